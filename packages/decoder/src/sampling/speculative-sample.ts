import type { SeededRandom } from './seeded-random.js';

/** What verification decided at one node of a draft tree. */
export interface DraftVerdict {
  /** Index of the accepted draft child, or −1 when every child was rejected. */
  readonly child: number;
  /** The token emitted: the accepted child's token, or a sample from what the rejections left. */
  readonly token: number;
}

/**
 * A verification rule: given the target distribution at a node and the draft's children there, picks the
 * child to follow or the token to emit instead. {@link speculativeSample} is the exact one.
 */
export type DraftAcceptanceRule = (
  target: Float64Array,
  children: readonly number[],
  random: SeededRandom,
) => DraftVerdict;

/**
 * Multi-draft speculative sampling at one node of a draft tree (the recursive rejection sampling of
 * SpecInfer, with each draft child a deterministic proposal). The children are tried in order: child
 * `x` is accepted with probability `r(x) / Σ r`, where `r` starts as the target distribution and each
 * rejected child's entry is set to 0 (the residual `max(0, r − δ_x)`); when every child is rejected the
 * token is drawn from the residual. The emitted token is distributed exactly as `target`, whatever the
 * children are (duplicates and tokens the target never picks included), so speculative decoding samples
 * the target model exactly; the chance that some child is accepted is the target mass the children
 * cover. A draft tree built from a drafter's top candidates (not sampled from its distribution) needs
 * exactly this point-mass form: dividing by the drafter's probabilities would bias the output.
 *
 * With a point-mass target (temperature 0) it accepts the child equal to the argmax, else emits the
 * argmax, consuming no random numbers.
 *
 * @param target `[vocabSize]` probabilities of the next token under the target model (sums to 1)
 * @param children draft tokens below the node, most promising first
 * @example
 * ```ts
 * const target = samplingDistribution(row, sampling);
 * const verdict = speculativeSample(target, [17, 4], random); // { child: 0 | 1 | -1, token }
 * ```
 */
export function speculativeSample(
  target: Float64Array,
  children: readonly number[],
  random: SeededRandom,
): DraftVerdict {
  let total = 0;
  let support = 0;
  for (let token = 0; token < target.length; token++) {
    if (target[token]! > 0) {
      total += target[token]!;
      support++;
    }
  }
  if (support === 1) {
    // A point mass (greedy decoding): the verdict is certain.
    const token = target.findIndex((value) => value > 0);
    return { child: children.indexOf(token), token };
  }
  const residual = new Float64Array(target);
  for (let index = 0; index < children.length; index++) {
    const token = children[index]!;
    const mass = residual[token] ?? 0;
    if (mass <= 0) continue; // already rejected, or never picked by the target: rejected with certainty
    const remaining = total - mass;
    // The last token standing is accepted with certainty (guards against rounding in `remaining`).
    if (remaining <= total * 1e-12 || random.next() * total < mass) return { child: index, token };
    residual[token] = 0;
    total = remaining;
  }
  let draw = random.next() * total;
  let last = -1;
  for (let token = 0; token < residual.length; token++) {
    const mass = residual[token]!;
    if (mass <= 0) continue;
    last = token;
    draw -= mass;
    if (draw < 0) return { child: -1, token };
  }
  return { child: -1, token: last };
}
