import type { TreeAttentionPlan } from '@deft/core';
import { InvalidArgumentError, validatePlan } from '@deft/core';
import { computePartialStates, type PartialStateInputs } from '../attention/compute-partial-states.js';

/** Partial states in the `PartialStateLayout` of `@deft/core`, as a kernel writes them. */
export interface PartialStates {
  /** `[numPartials, numHeads, headDim]` f32 normalised outputs. */
  readonly o: Float32Array;
  /** `[numPartials, numHeads]` f32 log-sum-exp, **base 2**; `-Infinity` for a partial that sees no key. */
  readonly lse: Float32Array;
}

/**
 * The partial attention state of every (chunk, query) slot of a plan, computed in float64 and rounded
 * to f32: what a backend's tree-attention kernel must write before its reduction. Use it to test a
 * kernel's partials separately from its reduction.
 *
 * @param inputs `q` `[numQueries, numHeads, headDim]` f32; `k`, `v` `[numSlots, numKvHeads, headDim]`
 * (f32, or binary16 bits in a `Uint16Array`).
 * @throws InvalidArgumentError for an invalid plan, mismatched sizes, or a slot outside `k`/`v`.
 * @example
 * ```ts
 * const { o, lse } = computePartials(plan, { q, k, v, numHeads: 8, numKvHeads: 2, headDim: 64, scale: 1 / 8 });
 * ```
 */
export function computePartials(plan: TreeAttentionPlan, inputs: PartialStateInputs): PartialStates {
  const { q, k, v, numHeads, numKvHeads, headDim } = inputs;
  if (
    !Number.isInteger(numHeads) ||
    !Number.isInteger(numKvHeads) ||
    numKvHeads < 1 ||
    numHeads % numKvHeads !== 0
  ) {
    throw new InvalidArgumentError('numHeads must be a positive multiple of numKvHeads', {
      argument: 'numKvHeads',
      expected: `a divisor of ${numHeads}`,
      actual: numKvHeads,
    });
  }
  const rowSize = numKvHeads * headDim;
  if (
    !Number.isInteger(headDim) ||
    headDim < 1 ||
    k.length % rowSize !== 0 ||
    v.length !== k.length ||
    v.constructor !== k.constructor
  ) {
    throw new InvalidArgumentError(
      `k and v must both be [numSlots, ${numKvHeads}, ${headDim}] of one dtype`,
      {
        argument: 'k',
        expected: `a multiple of ${rowSize}`,
        actual: k.length,
      },
    );
  }
  if (q.length !== plan.numQueries * numHeads * headDim) {
    throw new InvalidArgumentError(`q must be [${plan.numQueries}, ${numHeads}, ${headDim}]`, {
      argument: 'q',
      expected: plan.numQueries * numHeads * headDim,
      actual: q.length,
    });
  }
  validatePlan(plan, { numSlots: k.length / rowSize });
  const states = computePartialStates(plan, inputs);
  return { o: Float32Array.from(states.o), lse: Float32Array.from(states.lse) };
}
