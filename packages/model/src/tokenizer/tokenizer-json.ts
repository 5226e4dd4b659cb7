import { InvalidArgumentError, NotFoundError, UnsupportedError } from '@deft/core';
import { ModelFormatError } from '../errors/model-format-error.js';
import { readFileBytes } from '../loaders/byte-source.js';
import type { PreTokenizerName } from './pre-tokenizers.js';
import { Tokenizer, type TokenKind } from './tokenizer.js';

interface JsonObject {
  readonly [key: string]: unknown;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function formatError(
  message: string,
  argument: string,
  expected: unknown,
  actual: unknown,
): ModelFormatError {
  return new ModelFormatError(`tokenizer.json: ${message}`, { argument, expected, actual });
}

function unsupported(argument: string, actual: unknown, why: string): never {
  throw new UnsupportedError(
    `tokenizer.json: ${argument} = ${JSON.stringify(actual)} is not supported; ${why}`,
    {
      argument,
      expected: 'a byte-level BPE tokenizer (GPT-2, Llama 3, Qwen)',
      actual,
    },
  );
}

/** Every pre-tokenizer step of a `pre_tokenizer` (a `Sequence` or a single one). */
function preTokenizerSteps(preTokenizer: unknown): JsonObject[] {
  if (!isObject(preTokenizer)) return [];
  if (preTokenizer.type === 'Sequence' && Array.isArray(preTokenizer.pretokenizers)) {
    return preTokenizer.pretokenizers.filter(isObject);
  }
  return [preTokenizer];
}

/** The pre-tokenizer name of a byte-level BPE `pre_tokenizer`, from its split pattern. */
function preTokenizerName(preTokenizer: unknown): PreTokenizerName {
  const steps = preTokenizerSteps(preTokenizer);
  const byteLevel = steps.find((step) => step.type === 'ByteLevel');
  if (byteLevel === undefined) {
    unsupported(
      'pre_tokenizer',
      isObject(preTokenizer) ? preTokenizer.type : (preTokenizer ?? null),
      'a ByteLevel step is needed',
    );
  }
  if (byteLevel.add_prefix_space === true)
    unsupported('pre_tokenizer.add_prefix_space', true, 'prefix spaces are not added');
  const split = steps.find((step) => step.type === 'Split');
  if (split === undefined) {
    if (byteLevel.use_regex === false)
      unsupported('pre_tokenizer', 'ByteLevel without a split', 'a split pattern is needed');
    return 'gpt-2';
  }
  const pattern = isObject(split.pattern) ? split.pattern.Regex : undefined;
  if (typeof pattern !== 'string')
    unsupported('pre_tokenizer.pattern', split.pattern, 'a Regex split is needed');
  const tail = pattern.slice(pattern.indexOf(')|') + 2);
  const known: [string, PreTokenizerName][] = [
    [
      '[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
      'llama-bpe',
    ],
    [
      '[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
      'qwen2',
    ],
  ];
  const match = known.find(([candidate]) => candidate === tail);
  if (match === undefined || !pattern.startsWith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|")) {
    unsupported('pre_tokenizer.pattern', pattern, 'the Llama 3 and Qwen 2 split patterns are implemented');
  }
  return match[1];
}

/** The content of a `tokenizer_config.json` token entry (`"<s>"` or `{ "content": "<s>" }`). */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

/**
 * Builds a tokenizer from a Hugging Face `tokenizer.json` (and optionally its `tokenizer_config.json`):
 * byte-level BPE (`model.type` `BPE` with a `ByteLevel` pre-tokenizer: GPT-2, Llama 3, Qwen 2/3), its
 * added tokens (special ones as control tokens, the others matched whole), BOS from the post-processor
 * or the config, EOS from the config, and an NFC normalizer where the file has one.
 *
 * @param json the parsed file or its text
 * @param config the parsed `tokenizer_config.json`, for `bos_token`, `eos_token` and `add_bos_token`
 * @throws UnsupportedError naming the field of another kind of tokenizer (Unigram, WordPiece,
 *   SentencePiece-style BPE, another split pattern); ModelFormatError for a malformed file.
 * @example
 * ```ts
 * const tokenizer = tokenizerFromJson(await (await fetch(url)).text());
 * ```
 */
export function tokenizerFromJson(json: unknown, config?: unknown): Tokenizer {
  let root: unknown = json;
  if (typeof json === 'string') {
    try {
      root = JSON.parse(json);
    } catch (error) {
      throw new ModelFormatError(`tokenizer.json is not JSON: ${(error as Error).message}`, {
        argument: 'json',
        expected: 'JSON',
        cause: error,
      });
    }
  }
  if (!isObject(root) || !isObject(root.model))
    throw formatError('has no model object', 'model', 'object', typeof root);
  const model = root.model;
  if (model.type !== 'BPE') unsupported('model.type', model.type, 'only BPE is implemented');
  if (model.byte_fallback === true)
    unsupported('model.byte_fallback', true, 'SentencePiece-style BPE is read from GGUF files');
  const preTokenizer = preTokenizerName(root.pre_tokenizer);
  if (!isObject(model.vocab))
    throw formatError('model.vocab is not an object', 'model.vocab', 'object', typeof model.vocab);
  if (!Array.isArray(model.merges))
    throw formatError('model.merges is not an array', 'model.merges', 'array', typeof model.merges);
  const normalizer = root.normalizer;
  if (
    normalizer !== null &&
    normalizer !== undefined &&
    !(isObject(normalizer) && normalizer.type === 'NFC')
  ) {
    unsupported(
      'normalizer.type',
      isObject(normalizer) ? normalizer.type : normalizer,
      'NFC or none is implemented',
    );
  }
  const added = Array.isArray(root.added_tokens) ? root.added_tokens.filter(isObject) : [];
  let size = 0;
  for (const id of Object.values(model.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw formatError('a vocabulary id is not an integer >= 0', 'model.vocab', 'integer', id);
    size = Math.max(size, (id as number) + 1);
  }
  for (const token of added) if (Number.isInteger(token.id)) size = Math.max(size, (token.id as number) + 1);
  if (size === 0 || size > 1 << 22)
    throw formatError(`has ${size} tokens`, 'model.vocab', '1..4194304 tokens', size);
  const pieces = Array.from({ length: size }, (_, id) => `[PAD${id}]`);
  const kinds = new Array<TokenKind>(size).fill('unused');
  for (const [piece, id] of Object.entries(model.vocab)) {
    pieces[id as number] = piece;
    kinds[id as number] = 'normal';
  }
  for (const token of added) {
    if (!Number.isInteger(token.id) || typeof token.content !== 'string') {
      throw formatError(
        'an added token lacks an integer id or a string content',
        'added_tokens',
        '{ id, content }',
        token,
      );
    }
    pieces[token.id as number] = token.content;
    kinds[token.id as number] = token.special === true ? 'control' : 'user-defined';
  }
  const merges = model.merges.map((merge) => {
    if (typeof merge === 'string') return merge;
    if (Array.isArray(merge) && merge.length === 2 && merge.every((part) => typeof part === 'string'))
      return merge.join(' ');
    throw formatError('a merge is neither "a b" nor ["a", "b"]', 'model.merges', '"a b"', merge);
  });
  const settings = isObject(config) ? config : {};
  const idOf = (text: string | undefined) => (text === undefined ? -1 : pieces.indexOf(text));
  // BOS: the special token the post-processor puts first (Llama 3), or the config's bos_token.
  const processor = isObject(root.post_processor) ? root.post_processor : undefined;
  const steps =
    processor?.type === 'Sequence' && Array.isArray(processor.processors)
      ? processor.processors
      : [processor];
  const template = steps.find(
    (step): step is JsonObject => isObject(step) && step.type === 'TemplateProcessing',
  );
  const first = Array.isArray(template?.single) ? template.single[0] : undefined;
  const templateBos =
    isObject(first) && isObject(first.SpecialToken) ? String(first.SpecialToken.id) : undefined;
  const bosText = tokenText(settings.bos_token) ?? templateBos;
  const eosText = tokenText(settings.eos_token);
  // Without a config, the usual names (Llama 3, Llama 2 / Mistral, GPT-2 and Qwen).
  const firstOf = (texts: string[]) => texts.map((text) => pieces.indexOf(text)).find((id) => id >= 0) ?? 0;
  const namedBos = idOf(bosText);
  const namedEos = idOf(eosText);
  const bosId = namedBos >= 0 ? namedBos : firstOf(['<|begin_of_text|>', '<s>', '<|endoftext|>']);
  const eosId = namedEos >= 0 ? namedEos : firstOf(['<|end_of_text|>', '</s>', '<|endoftext|>']);
  const addBos =
    typeof settings.add_bos_token === 'boolean' ? settings.add_bos_token : templateBos !== undefined;
  try {
    return new Tokenizer({
      model: 'bpe',
      pieces,
      scores: new Float32Array(size),
      kinds,
      merges,
      preTokenizer,
      bosId,
      eosId,
      unknownId: -1,
      addSpacePrefix: false,
      addBos,
      ...(isObject(normalizer) ? { normalization: 'NFC' as const } : {}),
    });
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
    throw formatError(
      `holds an invalid vocabulary: ${error.message}`,
      error.argument ?? 'model',
      error.expected,
      error.actual,
    );
  }
}

/**
 * Loads a Hugging Face `tokenizer.json` from a local file (Node), with `tokenizer_config.json` beside it
 * when present. See {@link tokenizerFromJson}.
 * @throws NotFoundError for a missing file; otherwise as `tokenizerFromJson`.
 * @example
 * ```ts
 * const tokenizer = await loadTokenizerJson('Qwen3-0.6B/tokenizer.json');
 * ```
 */
export async function loadTokenizerJson(path: string): Promise<Tokenizer> {
  const decoder = new TextDecoder();
  const json = decoder.decode(await readFileBytes(path, 'tokenizer file'));
  const configPath = path.replace(/tokenizer\.json$/, 'tokenizer_config.json');
  let config: unknown;
  if (configPath !== path) {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFileBytes(configPath, 'tokenizer file');
    } catch (error) {
      // The config is optional: only its absence is fine.
      if (!NotFoundError.isInstance(error)) throw error;
    }
    if (bytes !== undefined) {
      try {
        config = JSON.parse(decoder.decode(bytes));
      } catch (error) {
        throw new ModelFormatError(`${configPath} is not JSON: ${(error as Error).message}`, {
          argument: configPath,
          expected: 'JSON',
          cause: error,
        });
      }
    }
  }
  return tokenizerFromJson(json, config);
}
