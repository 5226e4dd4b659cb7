import { loadLlama2cTokenizer, loadTokenizerJson, type Tokenizer } from '@deft/model';
import { UsageError } from '../errors/usage-error.js';

/**
 * Loads a `--tokenizer` file: a Hugging Face `tokenizer.json` (by its extension), else a llama2.c tokenizer
 * (`tokenizer.bin`, `tok512.bin`).
 *
 * @param vocabSize The model's vocabulary size; a tokenizer with more tokens is refused.
 * @throws UsageError when a `tokenizer.json` has more tokens than the model; the loaders' errors otherwise.
 * @example
 * ```ts
 * const tokenizer = await loadTokenizerFile('tokenizer.json', gguf.config.vocabSize);
 * ```
 */
export async function loadTokenizerFile(path: string, vocabSize: number): Promise<Tokenizer> {
  if (!path.toLowerCase().endsWith('.json')) return loadLlama2cTokenizer(path, vocabSize);
  const tokenizer = await loadTokenizerJson(path);
  if (tokenizer.vocabSize > vocabSize) {
    throw new UsageError(
      `${path} has ${tokenizer.vocabSize} tokens but the model only ${vocabSize}; pass the model's own tokenizer`,
      { argument: '--tokenizer', expected: `<= ${vocabSize} tokens`, actual: tokenizer.vocabSize },
    );
  }
  return tokenizer;
}
