/**
 * Attention states of one or more heads: normalised outputs `o` and base-2 log-sum-exps `lse`
 * (the `PartialStateLayout` of `@deft/core`). The empty state is `lse = -Infinity`, `o = 0`.
 */
export interface AttentionStates {
  /** `[numStates, numHeads, headDim]` normalised outputs `Σ exp(s) v / Σ exp(s)`. */
  readonly o: Float32Array | Float64Array;
  /** `[numStates, numHeads]` `log2(Σ exp(s))`, **base 2**; `-Infinity` for a state with no key. */
  readonly lse: Float32Array | Float64Array;
  readonly numHeads: number;
  readonly headDim: number;
}

/**
 * Merges the attention states `slots` of `states` into one state per head, in float64:
 * `M = max lse_j`, `O = Σ_j o_j · 2^(lse_j − M) / Σ_j 2^(lse_j − M)`, `LSE = M + log2(Σ_j 2^(lse_j − M))`.
 * The merge is associative and commutative up to rounding; empty states contribute nothing.
 *
 * @param slots Indices of the states to merge (any order; none gives the empty state).
 * @param out `[numHeads, headDim]` receives the merged `O` (zero for the empty state).
 * @param outLse `[numHeads]` optionally receives the merged base-2 `LSE` (`-Infinity` when empty).
 * @example
 * ```ts
 * mergeAttentionStates(partials, plan.queryPartials.subarray(begin, end), output.subarray(query * numHeads * headDim));
 * ```
 */
export function mergeAttentionStates(
  states: AttentionStates,
  slots: ArrayLike<number>,
  out: Float32Array | Float64Array,
  outLse?: Float32Array | Float64Array,
): void {
  const { o, lse, numHeads, headDim } = states;
  const accumulator = new Float64Array(headDim);
  for (let head = 0; head < numHeads; head++) {
    let maximum = Number.NEGATIVE_INFINITY;
    for (let index = 0; index < slots.length; index++) {
      const value = lse[slots[index]! * numHeads + head]!;
      // NaN must propagate, not be mistaken for an empty state: once seen, it sticks as the maximum.
      if (value > maximum || Number.isNaN(value)) maximum = value;
    }
    const outBase = head * headDim;
    // Empty-state guard: if every state is empty (or there are none), M = -Infinity and
    // 2^(lse - M) would be 2^(-Infinity + Infinity) = NaN. The merged state is empty: o = 0, lse = -Infinity.
    if (maximum === Number.NEGATIVE_INFINITY) {
      out.fill(0, outBase, outBase + headDim);
      if (outLse !== undefined) outLse[head] = Number.NEGATIVE_INFINITY;
      continue;
    }
    accumulator.fill(0);
    let total = 0;
    for (let index = 0; index < slots.length; index++) {
      const slot = slots[index]!;
      // An empty state among non-empty ones has weight 2^(-Infinity) = 0 and adds nothing.
      const weight = 2 ** (lse[slot * numHeads + head]! - maximum);
      if (weight === 0) continue;
      total += weight;
      const stateBase = (slot * numHeads + head) * headDim;
      for (let dimension = 0; dimension < headDim; dimension++) {
        accumulator[dimension]! += weight * o[stateBase + dimension]!;
      }
    }
    for (let dimension = 0; dimension < headDim; dimension++)
      out[outBase + dimension] = accumulator[dimension]! / total;
    if (outLse !== undefined) outLse[head] = maximum + Math.log2(total);
  }
}
