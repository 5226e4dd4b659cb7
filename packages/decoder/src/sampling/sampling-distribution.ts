import { argmaxToken } from './choose-token.js';
import { keptTokens } from './kept-tokens.js';
import type { ResolvedSampling } from './sampling-options.js';

/**
 * The distribution that sampling draws the next token from, as one probability per vocabulary entry
 * (zero outside the kept tokens): exactly the distribution of {@link chooseToken} at these options. At
 * temperature 0 it is the point mass on the argmax (the smaller id on ties).
 *
 * @param row `[vocabSize]` natural-log probabilities (or logits)
 * @returns `[vocabSize]` probabilities summing to 1
 * @example
 * ```ts
 * const target = samplingDistribution(step.row(leaf)!, resolveSampling({ temperature: 0.8, topK: 40 }));
 * ```
 */
export function samplingDistribution(row: Float32Array, sampling: ResolvedSampling): Float64Array {
  const distribution = new Float64Array(row.length);
  if (sampling.temperature === 0) {
    distribution[argmaxToken(row).token] = 1;
    return distribution;
  }
  const kept = keptTokens(row, sampling);
  kept.tokens.forEach((token, index) => {
    distribution[token] = kept.weights[index]! / kept.total;
  });
  return distribution;
}
