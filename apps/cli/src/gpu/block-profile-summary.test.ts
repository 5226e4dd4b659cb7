import type { CudaBlockRecord } from '@deft/kernels-cuda';
import { describe, expect, it } from 'vitest';
import { formatBlockProfile, summarizeBlockProfile } from './block-profile-summary.js';

function record(task: number, tokens: number, rows: number, start: number, end: number): CudaBlockRecord {
  return {
    task,
    kvHead: 0,
    tokens,
    rows,
    multiprocessor: task % 2,
    startMicroseconds: start,
    endMicroseconds: end,
  };
}

describe('summarizeBlockProfile', () => {
  it('groups CTAs by task body and fits time against KV tiles', () => {
    // wgmma CTAs: 2 µs + 1.5 µs per 64-token tile; decode-style CTAs: 1 µs + 0.5 µs per tile.
    const blocks = [
      record(0, 640, 64, 0, 2 + 1.5 * 10),
      record(1, 320, 48, 0.2, 0.2 + 2 + 1.5 * 5),
      record(2, 400, 4, 0.1, 0.1 + 1 + 0.5 * 7),
      record(3, 100, 4, 9, 9 + 1 + 0.5 * 2),
      record(4, 64, 20, 1, 3),
    ];
    const summary = summarizeBlockProfile(
      { blocks, spanMicroseconds: 17 },
      { kernel: 'wgmma', multiprocessors: 2 },
    );
    expect(summary.kinds.map((kind) => kind.kind)).toEqual(['mma-1', 'mma-2', 'wgmma']);
    const wgmma = summary.kinds.find((kind) => kind.kind === 'wgmma')!;
    expect(wgmma.fixedMicroseconds).toBeCloseTo(2, 6);
    expect(wgmma.perTileMicroseconds).toBeCloseTo(1.5, 6);
    const decode = summary.kinds.find((kind) => kind.kind === 'mma-1')!;
    expect(decode).toMatchObject({ blocks: 2, fixedMicroseconds: 1, perTileMicroseconds: 0.5 });
    // One tile count only: no fit.
    expect(Number.isNaN(summary.kinds.find((kind) => kind.kind === 'mma-2')!.perTileMicroseconds)).toBe(true);
    expect(summary.last?.task).toBe(0);
    expect(summary.lastStartMicroseconds).toBe(9);
    const busy = 17 + 9.5 + 4.5 + 2 + 2;
    expect(summary.meanResidentBlocks).toBeCloseTo(busy / (17 * 2), 2);
    expect(summary.blocks[3]).toEqual([3, 0, 1, 9, 11]);
    expect(formatBlockProfile(summary)).toMatch(
      /^span 17 µs, last start 9, .*wgmma x2 mean .* \(2 \+ 1\.5\/tile\)/,
    );
  });

  it('summarises a launch without CTAs, and names CUDA-core CTAs scalar', () => {
    const empty = summarizeBlockProfile(
      { blocks: [], spanMicroseconds: 0 },
      { kernel: 'wgmma', multiprocessors: 2 },
    );
    expect(empty).toMatchObject({ spanMicroseconds: 0, meanResidentBlocks: 0, kinds: [], blocks: [] });
    expect(empty.last).toBeUndefined();
    expect(formatBlockProfile(empty)).toMatch(/no attention CTA/);
    const scalar = summarizeBlockProfile(
      { blocks: [record(0, 64, 8, 0, 1)], spanMicroseconds: 1 },
      { kernel: 'scalar', multiprocessors: 1 },
    );
    expect(scalar.kinds.map((kind) => kind.kind)).toEqual(['scalar']);
  });

  it('counts every task as mma when the plan does not run on wgmma', () => {
    const summary = summarizeBlockProfile(
      { blocks: [record(0, 640, 64, 0, 5)], spanMicroseconds: 5 },
      { kernel: 'mma', multiprocessors: 1 },
    );
    expect(summary.kinds.map((kind) => kind.kind)).toEqual(['mma-3']);
  });
});
