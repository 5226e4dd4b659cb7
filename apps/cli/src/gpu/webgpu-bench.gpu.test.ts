import { requestWebGpuDevice, type WebGpuDeviceHandle } from '@deft/kernels-webgpu';
import { afterAll, describe, expect, it } from 'vitest';
import type { Workload } from '../workloads/workload.js';
import { runWebGpuBench } from './webgpu-bench.js';

async function openDevice(): Promise<WebGpuDeviceHandle | string> {
  try {
    return await requestWebGpuDevice({ dawnOptions: ['disable-dawn-features=timestamp_quantization'] });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const opened = await openDevice();
const handle = typeof opened === 'string' ? undefined : opened;
if (handle === undefined) console.warn(`WebGPU bench test skipped: ${opened as string}`);

/** A small tree of the few-shot kind with a small attention shape, so a CPU Vulkan driver runs it quickly. */
const SMALL: Workload = {
  name: 'small-few-shot',
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  dtype: 'f16',
  pageSize: 16,
  seed: 3,
  nodes: [{ parent: -1, tokens: 200 }, ...Array.from({ length: 6 }, () => ({ parent: 0, tokens: 30 }))],
};

describe.skipIf(handle === undefined)('runWebGpuBench', () => {
  afterAll(() => handle?.dispose());

  it('checks, times and reports every strategy with floors and sequence ratios', async () => {
    const finished: string[] = [];
    const outcome = await runWebGpuBench({
      workloads: [SMALL],
      strategies: ['deft-flatten', 'sequence'],
      repetitions: 2,
      progress: { start() {}, done: (result) => finished.push(result), finish() {} },
      device: handle!.device,
      copyBufferBytes: 1 << 20,
      fmaWorkgroups: 4,
      minRuns: 2,
      budgetMilliseconds: 10,
      checkQueries: 3,
      chunkSizes: [64],
    });
    expect(outcome.checks.map((check) => check.passed)).toEqual([true, true, true]);
    expect(outcome.rows.map((row) => row.strategy)).toEqual(['deft-flatten', 'sequence', 'deft-flatten']);
    expect(outcome.rows[2]!.extra?.chunkSize).toBe(64);
    for (const row of outcome.rows) {
      expect(row.layerMicroseconds.median).toBeGreaterThan(0);
      expect(row.extra?.floorMicroseconds).toBeGreaterThan(0);
      expect(row.extra?.ratioToFloor).toBeGreaterThan(0);
    }
    expect(outcome.rows[1]!.vsSequence.time).toBe(1);
    expect(outcome.floors.copyBytesPerSecond).toBeGreaterThan(0);
    expect(finished).toHaveLength(3);
  });
});
