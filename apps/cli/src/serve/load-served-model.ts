import { basename } from 'node:path';
import type { ModelBackend } from '@deft/core';
import { ChatTemplate, LlamaModel, loadGgufModel, loadLlama2cCheckpoint, type Tokenizer } from '@deft/model';
import { UsageError } from '../errors/usage-error.js';
import { loadTokenizerFile } from '../model-files/load-tokenizer-file.js';
import { modelMemoryBudget } from '../model-files/model-memory.js';
import { type ChatFormat, modelChatFormat, plainChatFormat } from './chat-format.js';

/** What the server runs: the model, its tokenizer, its id and how chat prompts are written. */
export interface ServedModel {
  readonly model: LlamaModel;
  readonly tokenizer: Tokenizer;
  /** The file name without its extension (`stories260K`). */
  readonly id: string;
  readonly chatFormat: ChatFormat;
}

/**
 * Loads a GGUF model (with its own tokenizer unless one is given) or a llama2.c checkpoint with its
 * tokenizer file; a given tokenizer is a `tokenizer.json` or a llama2.c tokenizer. Chat prompts use the GGUF's chat template (`tokenizer.chat_template`) where it has one,
 * {@link plainChatFormat} otherwise.
 * @throws UsageError when no tokenizer can be found.
 */
export async function loadServedModel(
  modelPath: string,
  tokenizerPath: string | undefined,
  backend: ModelBackend,
): Promise<ServedModel> {
  const id = basename(modelPath).replace(/\.(gguf|bin)$/i, '');
  if (modelPath.toLowerCase().endsWith('.gguf')) {
    const gguf = await loadGgufModel(modelPath, { hostMemoryBudgetBytes: modelMemoryBudget() });
    const tokenizer =
      tokenizerPath === undefined
        ? gguf.tokenizer
        : await loadTokenizerFile(tokenizerPath, gguf.config.vocabSize);
    if (tokenizer === undefined) {
      throw new UsageError(`${modelPath} carries no tokenizer vocabulary; pass --tokenizer FILE`, {
        argument: '--tokenizer',
      });
    }
    const template = ChatTemplate.fromGgufMetadata(gguf.metadata, tokenizer);
    return {
      model: LlamaModel.create(backend, gguf),
      tokenizer,
      id,
      chatFormat: template === undefined ? plainChatFormat(tokenizer) : modelChatFormat(template),
    };
  }
  if (tokenizerPath === undefined) {
    throw new UsageError(
      'a llama2.c checkpoint needs its tokenizer: pass --tokenizer FILE (e.g. tok512.bin)',
      {
        argument: '--tokenizer',
      },
    );
  }
  const checkpoint = await loadLlama2cCheckpoint(modelPath, { hostMemoryBudgetBytes: modelMemoryBudget() });
  const tokenizer = await loadTokenizerFile(tokenizerPath, checkpoint.config.vocabSize);
  return {
    model: LlamaModel.create(backend, checkpoint),
    tokenizer,
    id,
    chatFormat: plainChatFormat(tokenizer),
  };
}
