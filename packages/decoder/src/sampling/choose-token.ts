import { keptTokens } from './kept-tokens.js';
import type { ResolvedSampling } from './sampling-options.js';
import type { SeededRandom } from './seeded-random.js';

/** A chosen token and its log-probability under the model (natural log, temperature 1). */
export interface ChosenToken {
  readonly token: number;
  readonly logProbability: number;
}

/**
 * The most likely token of a row (the smaller id on ties).
 * @param row `[vocabSize]` log-probabilities
 * @example
 * ```ts
 * argmaxToken(step.row(leaf)!).token;
 * ```
 */
export function argmaxToken(row: Float32Array): ChosenToken {
  let best = 0;
  for (let index = 1; index < row.length; index++) if (row[index]! > row[best]!) best = index;
  return { token: best, logProbability: row[best]! };
}

/**
 * Picks the next token from a row of log-probabilities: greedy at temperature 0, otherwise a seeded
 * sample after temperature, top-k and top-p (see {@link SamplingOptions}).
 *
 * @param row `[vocabSize]` natural-log probabilities
 * @example
 * ```ts
 * const { token } = chooseToken(step.row(leaf)!, resolveSampling({ temperature: 0.8, seed: 1 }), new SeededRandom(1));
 * ```
 */
export function chooseToken(
  row: Float32Array,
  sampling: ResolvedSampling,
  random: SeededRandom,
): ChosenToken {
  if (sampling.temperature === 0) return argmaxToken(row);
  const { tokens, weights, total } = keptTokens(row, sampling);
  let target = random.next() * total;
  for (let index = 0; index < tokens.length; index++) {
    target -= weights[index]!;
    if (target < 0) return { token: tokens[index]!, logProbability: row[tokens[index]!]! };
  }
  const last = tokens[tokens.length - 1]!;
  return { token: last, logProbability: row[last]! };
}
