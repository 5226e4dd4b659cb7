import { seededRandom } from '@deft/testing';
import type { BuiltWorkload } from '../workloads/build-workload.js';
import { ensureWorkloadFits } from '../workloads/workload-memory.js';

/** Random inputs of one layer of tree attention. */
export interface AttentionInputs {
  /** `[numQueries, heads, headDim]` queries. */
  readonly q: Float32Array;
  /** `[treeTokens, kvHeads, headDim]` keys in node order (all of node 0, then node 1, …). */
  readonly k: Float32Array;
  /** `[treeTokens, kvHeads, headDim]` values in node order. */
  readonly v: Float32Array;
  /** Softmax scale, `1 / sqrt(headDim)`. */
  readonly scale: number;
}

/** Keys and values are multiples of 2^-11 in [-1, 1): exact in f16 and f32, so every dtype sees the same numbers. */
const KV_GRID = 2048;

/**
 * Seeded random Q/K/V for a workload (seed from the workload). Queries are uniform in [-2, 2); keys and
 * values lie on a grid exactly representable in f16, so an f16 KV cache stores them without rounding.
 *
 * @throws {CapacityError} before allocating when Q, K or V exceed the longest typed array or the
 *   workload exceeds the host-memory budget (`DEFT_HOST_MEMORY_BUDGET`).
 * @example
 * ```ts
 * const inputs = randomAttentionInputs(buildWorkload(workload));
 * ```
 */
export function randomAttentionInputs(built: BuiltWorkload): AttentionInputs {
  const { workload } = built;
  ensureWorkloadFits(workload);
  const numQueries = built.queries.nodes.length;
  const treeTokens = built.tokenSlots.length;
  const q = new Float32Array(numQueries * workload.heads * workload.headDim);
  const k = new Float32Array(treeTokens * workload.kvHeads * workload.headDim);
  const v = new Float32Array(k.length);
  const queryRandom = seededRandom(workload.seed ^ 0x51ed2705);
  for (let index = 0; index < q.length; index++) q[index] = queryRandom() * 4 - 2;
  const keyRandom = seededRandom(workload.seed ^ 0x2545f491);
  for (let index = 0; index < k.length; index++)
    k[index] = (Math.floor(keyRandom() * 2 * KV_GRID) - KV_GRID) / KV_GRID;
  const valueRandom = seededRandom(workload.seed ^ 0x68e31da4);
  for (let index = 0; index < v.length; index++)
    v[index] = (Math.floor(valueRandom() * 2 * KV_GRID) - KV_GRID) / KV_GRID;
  return { q, k, v, scale: 1 / Math.sqrt(workload.headDim) };
}

/**
 * Scatters node-order K or V `[treeTokens, kvHeads, headDim]` into slot order `[numSlots, kvHeads, headDim]`
 * (slots no token uses stay zero).
 */
export function scatterToSlots(built: BuiltWorkload, nodeOrder: Float32Array): Float32Array {
  const rowLength = built.workload.kvHeads * built.workload.headDim;
  const slots = new Float32Array(built.numSlots * rowLength);
  const { tokenSlots } = built;
  for (let token = 0; token < tokenSlots.length; token++) {
    slots.set(nodeOrder.subarray(token * rowLength, (token + 1) * rowLength), tokenSlots[token]! * rowLength);
  }
  return slots;
}
