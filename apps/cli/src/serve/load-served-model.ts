import { basename } from 'node:path';
import { isModelBackend, type ModelBackend, UnsupportedError } from '@deft/core';
import { ChatTemplate, LlamaModel, loadGgufModel, loadLlama2cCheckpoint, type Tokenizer } from '@deft/model';
import {
  type BackendName,
  type OpenedBackend,
  openBackend,
  probeWebGpuAdapter,
} from '../backends/open-backend.js';
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
 * Opens the backend a server runs on. `auto`: CUDA, then a hardware WebGPU adapter, each only if it
 * implements the model ops, else the CPU.
 * @throws UsageError when a named backend has no model ops; UnsupportedError when it cannot run here.
 */
export async function openServeBackend(
  name: BackendName | 'auto',
): Promise<{ opened: OpenedBackend; backend: ModelBackend }> {
  if (name !== 'auto') {
    const opened = await openBackend(name);
    if (!isModelBackend(opened.backend)) {
      opened.dispose();
      throw new UsageError(
        `the ${name} backend runs tree attention but does not implement the model ops yet; use --backend cpu or --backend webgpu`,
        { argument: '--backend', expected: 'a backend with model ops', actual: name },
      );
    }
    return { opened, backend: opened.backend };
  }
  for (const candidate of ['cuda', 'webgpu'] as const) {
    if (candidate === 'webgpu') {
      const adapter = await probeWebGpuAdapter();
      if (adapter === undefined || adapter.software) continue;
    }
    try {
      const opened = await openBackend(candidate);
      if (isModelBackend(opened.backend)) return { opened, backend: opened.backend };
      opened.dispose();
    } catch (error) {
      if (!UnsupportedError.isInstance(error)) throw error;
    }
  }
  const opened = await openBackend('cpu');
  return { opened, backend: opened.backend as ModelBackend };
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
