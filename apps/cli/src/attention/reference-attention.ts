import { directTreeAttention } from '@deft/kernels-cpu/reference';
import type { BuiltWorkload } from '../workloads/build-workload.js';
import { type AttentionInputs, scatterToSlots } from './random-inputs.js';

/**
 * The float64 direct reference: each query's softmax over its whole path, without any plan.
 * Returns `[numQueries, heads, headDim]`.
 *
 * @example
 * ```ts
 * const expected = referenceAttention(built, inputs);
 * ```
 */
export function referenceAttention(built: BuiltWorkload, inputs: AttentionInputs): Float32Array {
  const { workload } = built;
  return directTreeAttention({
    view: built.view,
    queries: built.queries,
    q: inputs.q,
    k: scatterToSlots(built, inputs.k),
    v: scatterToSlots(built, inputs.v),
    numHeads: workload.heads,
    numKvHeads: workload.kvHeads,
    headDim: workload.headDim,
    scale: inputs.scale,
  });
}
