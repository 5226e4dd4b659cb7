import { UnsupportedError } from '@deft/core';
import { ModelFormatError } from '../errors/model-format-error.js';
import { tokenizerFromFile } from './file-vocabulary.js';
import {
  isPreTokenizerName,
  PRE_TOKENIZERS,
  type PreTokenizerName,
  preTokenizerIgnoresMerges,
} from './pre-tokenizers.js';
import type { Tokenizer, TokenKind } from './tokenizer.js';

const KINDS: Record<number, TokenKind> = {
  1: 'normal',
  2: 'unknown',
  3: 'control',
  4: 'user-defined',
  5: 'unused',
  6: 'byte',
};

/**
 * Builds the tokenizer described by GGUF metadata (`tokenizer.ggml.*`): SentencePiece
 * (`tokenizer.ggml.model = "llama"`, `▁` in pieces becomes a space) or byte-level BPE (`"gpt2"`, with the
 * merges and the pre-tokenizer `tokenizer.ggml.pre` names); BOS, EOS, the end-of-turn token and whether
 * BOS is added as the file says.
 *
 * @param metadata the GGUF metadata key-value pairs
 * @param name the file name, for messages
 * @returns the tokenizer, or `undefined` when the file carries no vocabulary
 * @throws UnsupportedError naming `tokenizer.ggml.model` or `tokenizer.ggml.pre` for another tokenizer;
 *   ModelFormatError for malformed arrays.
 * @example
 * ```ts
 * const tokenizer = tokenizerFromGgufMetadata(parsed.metadata, 'model.gguf');
 * ```
 */
export function tokenizerFromGgufMetadata(
  metadata: Readonly<Record<string, unknown>>,
  name = 'gguf',
): Tokenizer | undefined {
  const model = metadata['tokenizer.ggml.model'];
  if (model === undefined || model === 'no_vocab') return undefined;
  if (model !== 'llama' && model !== 'gpt2') {
    throw new UnsupportedError(
      `${name}: tokenizer.ggml.model = "${String(model)}" is not supported; SentencePiece ("llama") and byte-level BPE ("gpt2") vocabularies are`,
      {
        argument: 'tokenizer.ggml.model',
        expected: ['llama', 'gpt2'],
        actual: model,
      },
    );
  }
  const pre = metadata['tokenizer.ggml.pre'] ?? 'default';
  if (model === 'gpt2' && !isPreTokenizerName(pre)) {
    throw new UnsupportedError(
      `${name}: tokenizer.ggml.pre = "${String(pre)}" is not supported; byte-level BPE pre-tokenizers: ${PRE_TOKENIZERS.join(', ')}`,
      { argument: 'tokenizer.ggml.pre', expected: PRE_TOKENIZERS, actual: pre },
    );
  }
  const tokens = metadata['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens) || tokens.some((token) => typeof token !== 'string')) {
    throw new ModelFormatError(`${name} has no string array tokenizer.ggml.tokens`, {
      argument: 'tokenizer.ggml.tokens',
      expected: 'string[]',
      actual: typeof tokens,
    });
  }
  const size = tokens.length;
  const scores = metadata['tokenizer.ggml.scores'] ?? new Array<number>(size).fill(0);
  const types = metadata['tokenizer.ggml.token_type'] ?? new Array<number>(size).fill(1);
  for (const [key, array] of [
    ['tokenizer.ggml.scores', scores],
    ['tokenizer.ggml.token_type', types],
  ] as const) {
    if (!Array.isArray(array) || array.length !== size) {
      throw new ModelFormatError(`${name}: ${key} must be an array of ${size} numbers`, {
        argument: key,
        expected: size,
        actual: Array.isArray(array) ? array.length : typeof array,
      });
    }
  }
  const numberOr = (key: string, fallback: number): number => {
    const value = metadata[key];
    return typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : fallback;
  };
  const booleanOr = (key: string, fallback: boolean): boolean => {
    const value = metadata[key];
    return typeof value === 'boolean' ? value : fallback;
  };
  // The vocabulary's own checks (ids in range) report a bad file as a bad file.
  const kinds = (types as unknown[]).map((type) => KINDS[Number(type)] ?? 'normal');
  if (model === 'gpt2') {
    const merges = metadata['tokenizer.ggml.merges'] ?? [];
    if (!Array.isArray(merges) || merges.some((merge) => typeof merge !== 'string')) {
      throw new ModelFormatError(`${name}: tokenizer.ggml.merges must be an array of strings`, {
        argument: 'tokenizer.ggml.merges',
        expected: 'string[]',
        actual: typeof merges,
      });
    }
    const preTokenizer = pre as PreTokenizerName;
    return tokenizerFromFile(name, {
      model: 'bpe',
      pieces: tokens as string[],
      scores: new Float32Array(size),
      kinds,
      merges: merges as string[],
      preTokenizer,
      bosId: numberOr('tokenizer.ggml.bos_token_id', 11),
      eosId: numberOr('tokenizer.ggml.eos_token_id', 11),
      eotId: numberOr('tokenizer.ggml.eot_token_id', -1),
      unknownId: numberOr('tokenizer.ggml.unknown_token_id', -1),
      addSpacePrefix: false,
      addBos: booleanOr('tokenizer.ggml.add_bos_token', preTokenizerIgnoresMerges(preTokenizer)),
    });
  }
  return tokenizerFromFile(name, {
    pieces: (tokens as string[]).map((token) => token.replaceAll('\u2581', ' ')),
    scores: (scores as unknown[]).map(Number),
    kinds,
    bosId: numberOr('tokenizer.ggml.bos_token_id', 1),
    eosId: numberOr('tokenizer.ggml.eos_token_id', 2),
    eotId: numberOr('tokenizer.ggml.eot_token_id', -1),
    unknownId: numberOr('tokenizer.ggml.unknown_token_id', -1),
    addSpacePrefix: booleanOr('tokenizer.ggml.add_space_prefix', true),
    addBos: booleanOr('tokenizer.ggml.add_bos_token', true),
  });
}
