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
  const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
  const keep = sampling.topK > 0 ? Math.min(sampling.topK, order.length) : order.length;
  const maximum = row[order[0]!]! / sampling.temperature;
  const weights: number[] = [];
  let total = 0;
  for (let index = 0; index < keep; index++) {
    const weight = Math.exp(row[order[index]!]! / sampling.temperature - maximum);
    weights.push(weight);
    total += weight;
  }
  let kept = weights.length;
  if (sampling.topP < 1) {
    let cumulative = 0;
    for (let index = 0; index < weights.length; index++) {
      cumulative += weights[index]! / total;
      if (cumulative >= sampling.topP) {
        kept = index + 1;
        break;
      }
    }
  }
  let keptTotal = 0;
  for (let index = 0; index < kept; index++) keptTotal += weights[index]!;
  let target = random.next() * keptTotal;
  for (let index = 0; index < kept; index++) {
    target -= weights[index]!;
    if (target < 0) return { token: order[index]!, logProbability: row[order[index]!]! };
  }
  const last = order[kept - 1]!;
  return { token: last, logProbability: row[last]! };
}
