import { InvalidArgumentError } from '@deft/core';
import { describeValue } from '@deft/core/validate';

/** Largest token id a tree stores (tokens live in an `Int32Array`). */
export const MAX_TOKEN_ID = 0x7fffffff;

/**
 * Validates token ids (integers in `[0, 2^31 - 1]`) and returns them as a new `Int32Array`.
 * Accepts one token as a number or any array-like of numbers.
 *
 * @throws InvalidArgumentError if `tokens` is not a number or array-like, or holds a non-integer or negative id.
 */
export function toTokenArray(argument: string, tokens: unknown): Int32Array {
  if (typeof tokens === 'number') {
    checkToken(argument, tokens);
    return Int32Array.of(tokens);
  }
  if (
    tokens === null ||
    typeof tokens !== 'object' ||
    typeof (tokens as { length?: unknown }).length !== 'number'
  ) {
    throw new InvalidArgumentError(
      `${argument} must be a token id or an array of token ids, got ${describeValue(tokens)}`,
      { argument, expected: 'number | ArrayLike<number>', actual: tokens },
    );
  }
  const source = tokens as ArrayLike<unknown>;
  const result = new Int32Array(source.length);
  if (source instanceof Int32Array) {
    for (let index = 0; index < source.length; index++) {
      if (source[index]! < 0) checkToken(`${argument}[${index}]`, source[index]);
    }
    result.set(source);
    return result;
  }
  for (let index = 0; index < source.length; index++) {
    const token = source[index];
    // the argument name is only built for the error message
    if (typeof token !== 'number' || !(token >= 0 && token <= MAX_TOKEN_ID) || !Number.isInteger(token)) {
      checkToken(`${argument}[${index}]`, token);
    }
    result[index] = token as number;
  }
  return result;
}

/** Throws `InvalidArgumentError` unless `token` is a token id (an integer in `[0, 2^31 - 1]`). */
export function checkToken(argument: string, token: unknown): void {
  if (typeof token !== 'number' || !Number.isInteger(token) || token < 0 || token > MAX_TOKEN_ID) {
    throw new InvalidArgumentError(
      `${argument} must be a token id (an integer in [0, ${MAX_TOKEN_ID}]), got ${describeValue(token)}`,
      { argument, expected: `integer in [0, ${MAX_TOKEN_ID}]`, actual: token },
    );
  }
}
