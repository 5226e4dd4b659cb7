import type { TreeAttentionPlan } from '@deft/core';
import { f16Table } from '../ops/f16-table.js';
import type { AttentionStates } from './merge-attention-states.js';

/** Inputs of {@link computePartialStates}: queries and one layer of KV, host arrays. */
export interface PartialStateInputs {
  /** `[numQueries, numHeads, headDim]` f32 queries. */
  readonly q: Float32Array;
  /** `[numSlots, numKvHeads, headDim]` keys: f32 values, or binary16 bits when a `Uint16Array`. */
  readonly k: Float32Array | Uint16Array;
  /** `[numSlots, numKvHeads, headDim]` values, same dtype as `k`. */
  readonly v: Float32Array | Uint16Array;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Softmax scale applied to `q · k`. */
  readonly scale: number;
}

/**
 * Computes the partial attention state of every (chunk, query) pair of a plan, per query head, in
 * float64: for the tokens of chunk `c` whose segment bit is set for its `j`-th query, slot
 * `chunkQueryIndptr[c] + j` gets `o = Σ exp(s) v / Σ exp(s)` and `lse = log2(Σ exp(s))` (base 2), with
 * `s = scale · q · k`. Query head `h` reads KV head `floor(h / (numHeads / numKvHeads))`. A pair that
 * sees no token gets the empty state (`lse = -Infinity`, `o = 0`). The plan must already be validated.
 *
 * @returns float64 states `o` `[numPartials, numHeads, headDim]` and `lse` `[numPartials, numHeads]`.
 */
export function computePartialStates(plan: TreeAttentionPlan, inputs: PartialStateInputs): AttentionStates {
  const { q, k, v, numHeads, numKvHeads, headDim, scale } = inputs;
  const groupSize = numHeads / numKvHeads;
  const o = new Float64Array(plan.numPartials * numHeads * headDim);
  const lse = new Float64Array(plan.numPartials * numHeads).fill(Number.NEGATIVE_INFINITY);
  const table = k instanceof Uint16Array ? f16Table() : undefined;
  let maxTokens = 0;
  for (let chunk = 0; chunk < plan.numChunks; chunk++) {
    maxTokens = Math.max(maxTokens, plan.chunkTokenIndptr[chunk + 1]! - plan.chunkTokenIndptr[chunk]!);
  }
  const scores = new Float64Array(maxTokens);
  const visible = new Uint8Array(maxTokens);
  const accumulator = new Float64Array(headDim);
  const read = (array: Float32Array | Uint16Array, index: number): number =>
    table === undefined ? array[index]! : table[array[index]!]!;

  for (let chunk = 0; chunk < plan.numChunks; chunk++) {
    const tokenStart = plan.chunkTokenIndptr[chunk]!;
    const tokenCount = plan.chunkTokenIndptr[chunk + 1]! - tokenStart;
    const queryStart = plan.chunkQueryIndptr[chunk]!;
    const queryCount = plan.chunkQueryIndptr[chunk + 1]! - queryStart;
    const words = (queryCount + 31) >>> 5;
    const maskBase = plan.chunkMaskOffset[chunk]!;
    for (let local = 0; local < queryCount; local++) {
      const slot = queryStart + local;
      const query = plan.chunkQueries[slot]!;
      let anyVisible = false;
      for (let token = 0; token < tokenCount; token++) {
        const segment = plan.tokenSegments[tokenStart + token]!;
        const word = plan.mask[maskBase + segment * words + (local >>> 5)]!;
        visible[token] = (word >>> (local & 31)) & 1;
        if (visible[token] === 1) anyVisible = true;
      }
      if (!anyVisible) continue; // empty state: lse stays -Infinity, o stays 0
      for (let head = 0; head < numHeads; head++) {
        const kvHead = Math.floor(head / groupSize);
        const queryBase = (query * numHeads + head) * headDim;
        let maximum = Number.NEGATIVE_INFINITY;
        for (let token = 0; token < tokenCount; token++) {
          if (visible[token] === 0) continue;
          const keyBase = (plan.tokenSlots[tokenStart + token]! * numKvHeads + kvHead) * headDim;
          let dot = 0;
          for (let dimension = 0; dimension < headDim; dimension++) {
            dot += q[queryBase + dimension]! * read(k, keyBase + dimension);
          }
          const score = dot * scale;
          scores[token] = score;
          if (score > maximum) maximum = score;
        }
        accumulator.fill(0);
        let total = 0;
        for (let token = 0; token < tokenCount; token++) {
          if (visible[token] === 0) continue;
          const weight = Math.exp(scores[token]! - maximum);
          total += weight;
          const valueBase = (plan.tokenSlots[tokenStart + token]! * numKvHeads + kvHead) * headDim;
          for (let dimension = 0; dimension < headDim; dimension++) {
            accumulator[dimension]! += weight * read(v, valueBase + dimension);
          }
        }
        const stateBase = (slot * numHeads + head) * headDim;
        for (let dimension = 0; dimension < headDim; dimension++)
          o[stateBase + dimension] = accumulator[dimension]! / total;
        lse[slot * numHeads + head] = (maximum + Math.log(total)) * Math.LOG2E;
      }
    }
  }
  return { o, lse, numHeads, headDim };
}
