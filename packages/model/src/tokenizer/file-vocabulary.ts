import { InvalidArgumentError } from '@deft/core';
import { ModelFormatError } from '../errors/model-format-error.js';
import { Tokenizer, type TokenizerVocabulary } from './tokenizer.js';

/**
 * A tokenizer over a vocabulary read from file `name`: the vocabulary's own checks (ids in range, sizes)
 * report a bad file as a `ModelFormatError` naming it; other errors pass through.
 */
export function tokenizerFromFile(name: string, vocabulary: TokenizerVocabulary): Tokenizer {
  try {
    return new Tokenizer(vocabulary);
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
    throw new ModelFormatError(`${name} holds an invalid vocabulary: ${error.message}`, {
      argument: error.argument ?? name,
      expected: error.expected,
      actual: error.actual,
      cause: error,
    });
  }
}
