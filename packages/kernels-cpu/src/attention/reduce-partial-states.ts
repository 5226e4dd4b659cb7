import type { TreeAttentionPlan } from '@deft/core';
import { type AttentionStates, mergeAttentionStates } from './merge-attention-states.js';

/**
 * The tree-topology-aware reduction: query `q` merges its partial slots
 * `queryPartials[queryPartialIndptr[q] .. queryPartialIndptr[q + 1]]` into row `q` of `out`
 * (`[numQueries, numHeads, headDim]`). A query with no slot gets zeros.
 */
export function reducePartialStates(
  plan: TreeAttentionPlan,
  states: AttentionStates,
  out: Float32Array | Float64Array,
): void {
  const rowSize = states.numHeads * states.headDim;
  for (let query = 0; query < plan.numQueries; query++) {
    const slots = plan.queryPartials.subarray(
      plan.queryPartialIndptr[query]!,
      plan.queryPartialIndptr[query + 1]!,
    );
    mergeAttentionStates(states, slots, out.subarray(query * rowSize, (query + 1) * rowSize));
  }
}
