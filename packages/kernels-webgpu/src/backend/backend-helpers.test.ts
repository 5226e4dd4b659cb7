import type { TreeAttentionPlan } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { copyPageBatches } from './copy-page-batches.js';
import { linearDispatchGrid } from './dispatch-grid.js';
import { packPlan } from './plan-buffer-layout.js';

describe('copyPageBatches', () => {
  it('keeps independent copies in one batch and drops no-ops', () => {
    expect(copyPageBatches(Int32Array.of(0, 2, 4, 5), Int32Array.of(1, 3, 4, 6))).toEqual([
      [
        [0, 1],
        [2, 3],
        [5, 6],
      ],
    ]);
  });

  it('starts a new batch when a copy reads a page written earlier, or writes one read or written earlier', () => {
    expect(copyPageBatches(Int32Array.of(0, 1), Int32Array.of(1, 2))).toEqual([[[0, 1]], [[1, 2]]]);
    expect(copyPageBatches(Int32Array.of(1, 0), Int32Array.of(2, 1))).toEqual([[[1, 2]], [[0, 1]]]);
    expect(copyPageBatches(Int32Array.of(0, 3), Int32Array.of(1, 1))).toEqual([[[0, 1]], [[3, 1]]]);
    expect(copyPageBatches(new Int32Array(0), new Int32Array(0))).toEqual([]);
  });
});

describe('linearDispatchGrid', () => {
  it('covers every workgroup within the per-dimension limit', () => {
    expect(linearDispatchGrid(0, 65535)).toEqual([0, 0]);
    expect(linearDispatchGrid(10, 65535)).toEqual([10, 1]);
    const [x, y] = linearDispatchGrid(200_000, 65535);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(200_000);
  });
});

describe('packPlan', () => {
  it('lays the plan arrays out on 4-word boundaries and converts the visibility flags to words', () => {
    const plan = {
      chunkTokenIndptr: Int32Array.of(0, 2, 3),
      tokenSlots: Int32Array.of(5, 6, 9),
      tokenSegments: Int32Array.of(0, 0, 0),
      chunkQueryIndptr: Int32Array.of(0, 1, 3),
      chunkQueries: Int32Array.of(0, 0, 1),
      chunkMaskOffset: Int32Array.of(0, 1, 2),
      mask: Uint32Array.of(1, 3),
      chunkFullyVisible: Uint8Array.of(1, 1),
      queryPartialIndptr: Int32Array.of(0, 2, 3),
      queryPartials: Int32Array.of(0, 1, 2),
    } as unknown as TreeAttentionPlan;
    const { words, layout } = packPlan(plan);
    expect(layout).toEqual({
      chunkTokenIndptr: 0,
      tokenSlots: 4,
      tokenSegments: 8,
      chunkQueryIndptr: 12,
      chunkQueries: 16,
      chunkMaskOffset: 20,
      mask: 24,
      chunkFullyVisible: 28,
      queryPartialIndptr: 32,
      queryPartials: 36,
    });
    expect([...words.subarray(layout.tokenSlots, layout.tokenSlots + 3)]).toEqual([5, 6, 9]);
    expect([...words.subarray(layout.chunkFullyVisible, layout.chunkFullyVisible + 2)]).toEqual([1, 1]);
    expect(words.length).toBe(40);
  });
});
