import { InvalidArgumentError } from '@deft/core';

/**
 * How the next token is picked from the model's distribution. Temperature 0 (the default) is greedy
 * decoding (argmax, the smaller id on ties); otherwise the distribution `softmax(logProbability / temperature)`
 * is cut to the `topK` most likely tokens, then to the smallest set whose probability reaches `topP`, and
 * sampled with a generator seeded by `seed`.
 */
export interface SamplingOptions {
  /** `>= 0`; 0 = greedy (default). */
  readonly temperature?: number;
  /** Keep only the `topK` most likely tokens (0 or omitted: all). */
  readonly topK?: number;
  /** Nucleus sampling: keep the most likely tokens up to this cumulative probability, `(0, 1]` (default 1). */
  readonly topP?: number;
  /** Seed of the generator (default 0). The same seed gives the same samples. */
  readonly seed?: number;
}

/** Sampling options with every field present and checked. */
export interface ResolvedSampling {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number;
}

/**
 * Checks sampling options and fills in defaults.
 * @throws InvalidArgumentError naming the bad field.
 * @example
 * ```ts
 * resolveSampling({ temperature: 0.8, topP: 0.95, seed: 1 });
 * ```
 */
export function resolveSampling(options: SamplingOptions = {}): ResolvedSampling {
  const temperature = options.temperature ?? 0;
  const topK = options.topK ?? 0;
  const topP = options.topP ?? 1;
  const seed = options.seed ?? 0;
  const fail = (argument: string, expected: string, actual: unknown): never => {
    throw new InvalidArgumentError(`sampling.${argument} must be ${expected}, got ${String(actual)}`, {
      argument: `sampling.${argument}`,
      expected,
      actual,
    });
  };
  if (!(Number.isFinite(temperature) && temperature >= 0))
    fail('temperature', 'a finite number >= 0', temperature);
  if (!(Number.isInteger(topK) && topK >= 0)) fail('topK', 'an integer >= 0', topK);
  if (!(topP > 0 && topP <= 1)) fail('topP', 'in (0, 1]', topP);
  if (!Number.isInteger(seed)) fail('seed', 'an integer', seed);
  return { temperature, topK, topP, seed };
}
