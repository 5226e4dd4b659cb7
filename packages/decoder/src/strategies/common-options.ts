import { InvalidArgumentError } from '@deft/core';
import { assertInteger } from '@deft/core/validate';

/** Options every strategy takes. */
export interface CommonDecodeOptions {
  /** Prompt token ids (with BOS where the model expects it). */
  readonly prompt: ArrayLike<number>;
  /** Most tokens generated per sequence. */
  readonly maxTokens: number;
  /** Tokens that end a sequence (kept as its last token), e.g. `[tokenizer.eosId]`. Default: none. */
  readonly stopTokens?: readonly number[];
}

/** Checks `maxTokens` and returns the stop tokens as a set. */
export function resolveCommon(options: CommonDecodeOptions): {
  maxTokens: number;
  stopTokens: ReadonlySet<number>;
} {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options must be an object with prompt and maxTokens', {
      argument: 'options',
      expected: 'object',
      actual: options,
    });
  }
  const maxTokens = assertInteger('maxTokens', options.maxTokens, 1);
  const stopTokens = new Set<number>();
  for (const token of options.stopTokens ?? []) stopTokens.add(assertInteger('stopTokens[]', token, 0));
  return { maxTokens, stopTokens };
}
