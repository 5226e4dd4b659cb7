/**
 * The pre-tokenizers of byte-level BPE vocabularies, by the name GGUF files give them
 * (`tokenizer.ggml.pre`): each splits text into the words BPE merges inside of, with the regular
 * expression of the model's own tokenizer (as llama.cpp's `llama-vocab.cpp` lists them).
 */
export type PreTokenizerName = 'default' | 'gpt-2' | 'llama-bpe' | 'llama3' | 'smaug-bpe' | 'qwen2';

/** Every pre-tokenizer name this package reads. */
export const PRE_TOKENIZERS: readonly PreTokenizerName[] = [
  'default',
  'gpt-2',
  'llama-bpe',
  'llama3',
  'smaug-bpe',
  'qwen2',
];

const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

/** GPT-2's split: contractions, letters, numbers, other symbols, whitespace. */
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Llama 3's split: numbers in runs of at most three digits, a leading non-letter glued to a word. */
const LLAMA3 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;

/** Qwen 2's split: as Llama 3's, with every digit on its own. */
const QWEN2 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;

const PATTERNS: Readonly<Record<PreTokenizerName, string>> = {
  default: GPT2,
  'gpt-2': GPT2,
  'llama-bpe': LLAMA3,
  llama3: LLAMA3,
  'smaug-bpe': LLAMA3,
  qwen2: QWEN2,
};

/** True if `value` names a pre-tokenizer this package reads. */
export function isPreTokenizerName(value: unknown): value is PreTokenizerName {
  return typeof value === 'string' && value in PATTERNS;
}

/** Whether the vocabulary looks a whole word up before merging (Llama 3's `ignore_merges`). */
export function preTokenizerIgnoresMerges(name: PreTokenizerName): boolean {
  return PATTERNS[name] === LLAMA3;
}

/**
 * Splits text into pre-tokenizer words (their concatenation is the text).
 * @example
 * ```ts
 * preTokenize('llama-bpe', "Hello world 12345"); // ['Hello', ' world', ' ', '123', '45']
 * ```
 */
export function preTokenize(name: PreTokenizerName, text: string): string[] {
  const pattern = new RegExp(PATTERNS[name], 'gu');
  const words: string[] = [];
  for (const match of text.matchAll(pattern)) if (match[0].length > 0) words.push(match[0]);
  return words;
}
