import { InvalidArgumentError } from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import { buildPagedTree, randomTreeCase, SeededRandom } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { mergeAttentionStates } from '../attention/merge-attention-states.js';
import { computePartials } from './compute-partials.js';
import { directTreeAttention } from './direct-tree-attention.js';

describe('reference', () => {
  it('directTreeAttention of a single token returns its value', () => {
    const { view } = buildPagedTree([{ parent: -1, tokens: 1 }], 4);
    const v = Float32Array.of(0.5, -2, 0, 0, 0, 0, 0, 0); // slot 0 of 4: [numSlots, 1, 2]
    const out = directTreeAttention({
      view,
      queries: { nodes: Int32Array.of(0), positions: Int32Array.of(0) },
      q: Float32Array.of(1, 1, 3, 3),
      k: new Float32Array(8).fill(1),
      v,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 2,
      scale: 0.5,
    });
    expect(Array.from(out)).toEqual([0.5, -2, 0.5, -2]);
  });

  it('merging computePartials per query reproduces directTreeAttention', () => {
    for (let seed = 0; seed < 12; seed++) {
      const testCase = randomTreeCase(seed);
      const [numHeads, numKvHeads, headDim] = [4, 2, 8];
      const random = new SeededRandom(seed);
      const k = random.float32Array(testCase.numSlots * numKvHeads * headDim);
      const v = random.float32Array(testCase.numSlots * numKvHeads * headDim);
      const numQueries = testCase.queries.nodes.length;
      const q = random.float32Array(numQueries * numHeads * headDim);
      const plan = planTreeAttention(testCase.view, testCase.queries, {
        shape: { numHeads, numKvHeads, headDim, kvDtype: 'f32' },
      });
      const partials = computePartials(plan, { q, k, v, numHeads, numKvHeads, headDim, scale: 0.4 });
      expect(partials.o.length).toBe(plan.numPartials * numHeads * headDim);
      expect(partials.lse.every((value) => Number.isFinite(value))).toBe(true);
      const merged = new Float32Array(numQueries * numHeads * headDim);
      const rowSize = numHeads * headDim;
      for (let query = 0; query < numQueries; query++) {
        mergeAttentionStates(
          { ...partials, numHeads, headDim },
          plan.queryPartials.subarray(plan.queryPartialIndptr[query]!, plan.queryPartialIndptr[query + 1]!),
          merged.subarray(query * rowSize, (query + 1) * rowSize),
        );
      }
      const expected = directTreeAttention({
        view: testCase.view,
        queries: testCase.queries,
        q,
        k,
        v,
        numHeads,
        numKvHeads,
        headDim,
        scale: 0.4,
      });
      let difference = 0;
      let norm = 0;
      expected.forEach((value, index) => {
        difference += (merged[index]! - value) ** 2;
        norm += value ** 2;
      });
      expect(Math.sqrt(difference / norm), testCase.description).toBeLessThan(1e-6); // f32-rounded partials
    }
  });

  it('rejects mismatched inputs with InvalidArgumentError', () => {
    const { view } = buildPagedTree([{ parent: -1, tokens: 2 }], 2);
    const queries = { nodes: Int32Array.of(0), positions: Int32Array.of(1) };
    const base = {
      view,
      queries,
      q: new Float32Array(4),
      k: new Float32Array(4),
      v: new Float32Array(4),
      numHeads: 2,
      numKvHeads: 1,
      headDim: 2,
      scale: 1,
    };
    expect(() => directTreeAttention({ ...base, q: new Float32Array(3) })).toThrow(InvalidArgumentError);
    expect(() => directTreeAttention({ ...base, numKvHeads: 3 })).toThrow(InvalidArgumentError);
    expect(() =>
      directTreeAttention({ ...base, queries: { nodes: Int32Array.of(0), positions: Int32Array.of(2) } }),
    ).toThrow(InvalidArgumentError);
    expect(() => directTreeAttention({ ...base, k: new Float32Array(2), v: new Float32Array(2) })).toThrow(
      InvalidArgumentError,
    );
    const plan = planTreeAttention(view, queries, {
      shape: { numHeads: 2, numKvHeads: 1, headDim: 2, kvDtype: 'f32' },
    });
    expect(() => computePartials(plan, { ...base, k: new Float32Array(2), v: new Float32Array(2) })).toThrow(
      InvalidArgumentError,
    );
    expect(() => computePartials(plan, { ...base, q: new Float32Array(2) })).toThrow(InvalidArgumentError);
  });
});
