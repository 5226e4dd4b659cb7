import { describe, expect, it } from 'vitest';
import { mergeAttentionStates } from './merge-attention-states.js';

describe('mergeAttentionStates', () => {
  it('merging the partials of a split softmax gives the whole softmax', () => {
    const scores = [0.5, -1, 2, 0.25, 3];
    const values = [1, -2, 3, 0.5, 4];
    const whole = (indices: number[]): [number, number] => {
      const total = indices.reduce((sum, index) => sum + Math.exp(scores[index]!), 0);
      const o = indices.reduce((sum, index) => sum + Math.exp(scores[index]!) * values[index]!, 0) / total;
      return [o, Math.log2(total)];
    };
    const [firstO, firstLse] = whole([0, 1]);
    const [secondO, secondLse] = whole([2, 3, 4]);
    const [expectedO, expectedLse] = whole([0, 1, 2, 3, 4]);
    const states = {
      o: Float64Array.of(firstO, secondO, 7),
      lse: Float64Array.of(firstLse, secondLse, Number.NEGATIVE_INFINITY),
      numHeads: 1,
      headDim: 1,
    };
    const out = new Float64Array(1);
    const outLse = new Float64Array(1);
    mergeAttentionStates(states, [1, 2, 0], out, outLse); // slot 2 is empty and must not contribute
    expect(out[0]).toBeCloseTo(expectedO, 14);
    expect(outLse[0]).toBeCloseTo(expectedLse, 14);
  });

  it('gives the empty state (zeros, -Infinity) for no states or only empty ones, never NaN', () => {
    const states = {
      o: new Float32Array(4).fill(5),
      lse: new Float32Array(2).fill(Number.NEGATIVE_INFINITY),
      numHeads: 2,
      headDim: 2,
    };
    const out = new Float32Array(4).fill(9);
    const outLse = new Float32Array(2);
    mergeAttentionStates(states, [0], out, outLse);
    expect(Array.from(out)).toEqual([0, 0, 0, 0]);
    expect(Array.from(outLse)).toEqual([Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    out.fill(9);
    mergeAttentionStates(states, [], out);
    expect(Array.from(out)).toEqual([0, 0, 0, 0]);
  });

  it('is exact for very different magnitudes (no overflow)', () => {
    const states = { o: Float64Array.of(1, 2), lse: Float64Array.of(2000, 1000), numHeads: 1, headDim: 1 };
    const out = new Float64Array(1);
    mergeAttentionStates(states, [0, 1], out);
    expect(out[0]).toBe(1);
  });
});

describe('mergeAttentionStates with NaN', () => {
  it('propagates a NaN lse instead of treating it as empty', () => {
    const states = { o: Float64Array.of(1, 2), lse: Float64Array.of(Number.NaN, 0), numHeads: 1, headDim: 1 };
    const out = new Float64Array(1);
    mergeAttentionStates(states, [0, 1], out);
    expect(Number.isNaN(out[0])).toBe(true);
    mergeAttentionStates(
      { ...states, lse: Float64Array.of(Number.NaN, Number.NEGATIVE_INFINITY) },
      [1, 0],
      out,
    );
    expect(Number.isNaN(out[0])).toBe(true);
  });
});
