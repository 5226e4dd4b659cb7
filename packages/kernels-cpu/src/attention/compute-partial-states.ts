import { f16ToF32Table, type TreeAttentionPlan } from '@deft/core';
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
  const table = k instanceof Uint16Array ? f16ToF32Table() : undefined;
  const rowSize = numKvHeads * headDim;
  let maxTokens = 0;
  for (let chunk = 0; chunk < plan.numChunks; chunk++) {
    maxTokens = Math.max(maxTokens, plan.chunkTokenIndptr[chunk + 1]! - plan.chunkTokenIndptr[chunk]!);
  }
  // The chunk's K and V, decoded to float64 once per chunk: [chunkTokens, numKvHeads, headDim].
  const keys = new Float64Array(maxTokens * rowSize);
  const values = new Float64Array(maxTokens * rowSize);
  const scores = new Float64Array(maxTokens);
  const visible = new Uint8Array(maxTokens);
  const accumulator = new Float64Array(headDim);

  for (let chunk = 0; chunk < plan.numChunks; chunk++) {
    const tokenStart = plan.chunkTokenIndptr[chunk]!;
    const tokenCount = plan.chunkTokenIndptr[chunk + 1]! - tokenStart;
    for (let token = 0; token < tokenCount; token++) {
      const source = plan.tokenSlots[tokenStart + token]! * rowSize;
      const target = token * rowSize;
      if (table === undefined) {
        for (let index = 0; index < rowSize; index++) {
          keys[target + index] = k[source + index]!;
          values[target + index] = v[source + index]!;
        }
      } else {
        for (let index = 0; index < rowSize; index++) {
          keys[target + index] = table[k[source + index]!]!;
          values[target + index] = table[v[source + index]!]!;
        }
      }
    }
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
        const kvOffset = Math.floor(head / groupSize) * headDim;
        const queryBase = (query * numHeads + head) * headDim;
        let maximum = Number.NEGATIVE_INFINITY;
        for (let token = 0; token < tokenCount; token++) {
          if (visible[token] === 0) continue;
          const keyBase = token * rowSize + kvOffset;
          let dot = 0;
          for (let dimension = 0; dimension < headDim; dimension++)
            dot += q[queryBase + dimension]! * keys[keyBase + dimension]!;
          const score = dot * scale;
          scores[token] = score;
          // NaN scores must reach the output: a NaN maximum makes every weight NaN.
          if (score > maximum || Number.isNaN(score)) maximum = score;
        }
        accumulator.fill(0);
        let total = 0;
        for (let token = 0; token < tokenCount; token++) {
          if (visible[token] === 0) continue;
          const weight = Math.exp(scores[token]! - maximum);
          total += weight;
          const valueBase = token * rowSize + kvOffset;
          for (let dimension = 0; dimension < headDim; dimension++)
            accumulator[dimension]! += weight * values[valueBase + dimension]!;
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
