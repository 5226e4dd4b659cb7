import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CapacityError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { main } from '../main.js';
import { buildWorkload } from './build-workload.js';
import { findBuiltinWorkload } from './builtin.js';
import type { Workload } from './workload.js';
import { ensureWorkloadFits, estimateWorkloadMemory, MAX_TYPED_ARRAY_LENGTH } from './workload-memory.js';

function chain(name: string, tokens: number): Workload {
  return {
    name,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    dtype: 'f16',
    pageSize: 16,
    seed: 1,
    nodes: [
      { parent: -1, tokens },
      { parent: 0, tokens: 1 },
    ],
  };
}

function workloadFile(workload: Workload): { directory: string; file: string } {
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-memory-'));
  const file = path.join(directory, 'huge.json');
  writeFileSync(file, JSON.stringify(workload));
  return { directory, file };
}

describe('workload memory guard', () => {
  it('estimates K, V, Q and the KV storage of a built-in workload', () => {
    const memory = estimateWorkloadMemory(findBuiltinWorkload('sd-t64')!);
    expect(memory.largestArrayLength).toBe(memory.numSlots * 8 * 128);
    // K and V in f32 node order plus the f16 paged storage, at least.
    expect(memory.bytes).toBeGreaterThan(memory.treeTokens * 8 * 128 * (8 + 4));
  });

  it('deft attn refuses a 10^10-token workload at once with a CapacityError naming bytes and limit', async () => {
    const { directory, file } = workloadFile(chain('huge', 1e10));
    const io = recordingIo(directory);
    const started = performance.now();
    const code = await main(['attn', '--workload', file], io);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(code).not.toBe(0);
    expect(io.errors()).toMatch(/CapacityError: workload 'huge' \(10000000001 tokens, 1 queries\) needs/);
    expect(io.errors()).toMatch(/limit is 2147483647/);
  });

  it('deft attn refuses K/V longer than the longest typed array, naming the size and the limit', async () => {
    const { directory, file } = workloadFile(chain('long', 2 ** 23));
    const io = recordingIo(directory);
    const code = await main(['attn', '--workload', file], io);
    expect(code).not.toBe(0);
    expect(io.errors()).toContain('CapacityError');
    expect(io.errors()).toContain(`above the limit of ${MAX_TYPED_ARRAY_LENGTH} elements`);
  });

  it('deft attn and deft bench refuse a workload above DEFT_HOST_MEMORY_BUDGET before running', async () => {
    const workload = chain('budget', 2 ** 16);
    const bytes = estimateWorkloadMemory(workload).bytes;
    expect(() => ensureWorkloadFits(workload, { budgetBytes: bytes - 1 })).toThrow(CapacityError);
    expect(ensureWorkloadFits(workload, { budgetBytes: bytes }).bytes).toBe(bytes);
    const { directory, file } = workloadFile(workload);
    const previous = process.env.DEFT_HOST_MEMORY_BUDGET;
    process.env.DEFT_HOST_MEMORY_BUDGET = String(bytes - 1);
    try {
      for (const argv of [
        ['attn', '--workload', file],
        ['bench', '--backend', 'cpu', '--workloads', file],
      ]) {
        const io = recordingIo(directory);
        expect(await main(argv, io)).not.toBe(0);
        expect(io.errors()).toContain(`above the budget of`);
        expect(io.errors()).toContain(`(${bytes - 1} bytes)`);
        expect(io.output()).toBe('');
      }
    } finally {
      if (previous === undefined) delete process.env.DEFT_HOST_MEMORY_BUDGET;
      else process.env.DEFT_HOST_MEMORY_BUDGET = previous;
    }
  });

  it('deft plan refuses a plan above DEFT_HOST_MEMORY_BUDGET whose inputs fit, before planning it', async () => {
    // 2^14 leaves under a 4096-token prefix: tiny K/V, but the sequence baseline reads 67M tokens (0.5 GB of
    // token columns).
    const workload: Workload = {
      name: 'wide',
      heads: 1,
      kvHeads: 1,
      headDim: 4,
      dtype: 'f32',
      pageSize: 16,
      seed: 1,
      nodes: [
        { parent: -1, tokens: 4096 },
        ...Array.from({ length: 2 ** 14 }, () => ({ parent: 0, tokens: 1 })),
      ],
    };
    const budget = 64 * 2 ** 20;
    expect(ensureWorkloadFits(workload, { budgetBytes: budget }).bytes).toBeLessThan(budget);
    const { directory, file } = workloadFile(workload);
    const previous = process.env.DEFT_HOST_MEMORY_BUDGET;
    process.env.DEFT_HOST_MEMORY_BUDGET = String(budget);
    try {
      const io = recordingIo(directory);
      const started = performance.now();
      expect(await main(['plan', '--workload', file, '--strategy', 'sequence'], io)).not.toBe(0);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(io.errors()).toContain('CapacityError');
      expect(io.errors()).toMatch(
        /a sequence plan of 67125248 tokens read .* above options\.hostMemoryBudgetBytes \(67108864 bytes\)/,
      );
    } finally {
      if (previous === undefined) delete process.env.DEFT_HOST_MEMORY_BUDGET;
      else process.env.DEFT_HOST_MEMORY_BUDGET = previous;
    }
  });

  it('buildWorkload refuses slots that overflow 32-bit indices without allocating', () => {
    expect(() => buildWorkload(chain('huge', 2 ** 31))).toThrow(CapacityError);
  });
});
