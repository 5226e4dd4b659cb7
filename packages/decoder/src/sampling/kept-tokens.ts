import type { ResolvedSampling } from './sampling-options.js';

/**
 * The tokens sampling may pick from a row and their unnormalised weights, most likely first: the row after
 * temperature, cut to `topK`, then to the smallest prefix whose probability reaches `topP`. Ties are
 * ordered by the smaller id, so the cut is the same on every platform.
 */
export interface KeptTokens {
  /** `[kept]` token ids, most likely first. */
  readonly tokens: readonly number[];
  /** `[kept]` weights `exp(logProbability / temperature − max)` of `tokens`. */
  readonly weights: readonly number[];
  /** Sum of `weights`. */
  readonly total: number;
}

/** The kept tokens of a row at a temperature > 0 (see {@link KeptTokens}). */
export function keptTokens(row: Float32Array, sampling: ResolvedSampling): KeptTokens {
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
  return { tokens: order.slice(0, kept), weights: weights.slice(0, kept), total: keptTotal };
}
