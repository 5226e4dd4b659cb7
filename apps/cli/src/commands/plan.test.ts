import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { main } from '../main.js';
import { BUILTIN_WORKLOADS } from '../workloads/builtin.js';
import { summarizeWorkload } from '../workloads/workload-summary.js';

interface PlanJson {
  workload: {
    name: string;
    uniqueVisibleTokens: number;
    pathTokens: number;
    kvBytesPerToken: number;
    sequenceKvBytes: number;
  };
  plans: {
    strategy: string;
    numChunks: number;
    numPartials: number;
    io: { uniqueKvBytes: number; kvBytesRead: number; maskBytes: number; partialBytes: number };
    kvReadToUnique: number;
    kvReadToSequence: number;
    planMicroseconds: number;
  }[];
}

async function planJson(...argv: string[]): Promise<PlanJson> {
  const io = recordingIo();
  const code = await main(['plan', ...argv, '--json'], io);
  expect(io.errors()).toBe('');
  expect(code).toBe(0);
  return JSON.parse(io.output()) as PlanJson;
}

describe('deft plan --json', () => {
  it('prints the IO model of every strategy', async () => {
    const report = await planJson('--workload', 'few-shot-b20');
    expect(report.workload.name).toBe('few-shot-b20');
    expect(report.plans.map((plan) => plan.strategy)).toEqual([
      'deft-flatten',
      'deft-node',
      'deft-node-chunk',
      'sequence',
    ]);
    for (const plan of report.plans) {
      expect(plan.numChunks).toBeGreaterThan(0);
      expect(plan.numPartials).toBeGreaterThanOrEqual(20);
      expect(plan.io.uniqueKvBytes).toBe(12000 * 2 * 8 * 128 * 2);
      expect(plan.planMicroseconds).toBeGreaterThan(0);
      expect(plan.kvReadToUnique).toBeCloseTo(plan.io.kvBytesRead / plan.io.uniqueKvBytes, 12);
    }
  });

  it('plans one strategy with a page size and shape override', async () => {
    const report = await planJson(
      '--workload',
      'sd-t64',
      '--strategy',
      'sequence',
      '--page-size',
      '1',
      '--heads',
      '8',
      '--kv-heads',
      '2',
    );
    expect(report.plans).toHaveLength(1);
    expect(report.plans[0]!.io.kvBytesRead).toBe(64 * 1001 * 2 * 2 * 128 * 2);
  });

  // The headline property of DeFT: the flattened plan reads each KV byte once; the baseline reads every path.
  it.each(BUILTIN_WORKLOADS.map((workload) => workload.name))(
    '%s: deft-flatten reads the unique KV bytes (±2%%), sequence reads Σ path lengths',
    async (name) => {
      const report = await planJson('--workload', name, '--strategy', 'deft-flatten');
      const sequence = await planJson('--workload', name, '--strategy', 'sequence');
      const summary = summarizeWorkload(BUILTIN_WORKLOADS.find((workload) => workload.name === name)!);
      const flatten = report.plans[0]!;
      expect(flatten.io.uniqueKvBytes).toBe(summary.uniqueVisibleTokens * summary.kvBytesPerToken);
      expect(Math.abs(flatten.io.kvBytesRead / flatten.io.uniqueKvBytes - 1)).toBeLessThanOrEqual(0.02);
      expect(sequence.plans[0]!.io.kvBytesRead).toBe(summary.pathTokens * summary.kvBytesPerToken);
      expect(sequence.workload.sequenceKvBytes).toBe(sequence.plans[0]!.io.kvBytesRead);
    },
  );

  it('reads a workload file relative to the working directory', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-plan-'));
    const workload = {
      name: 'file-tree',
      heads: 4,
      kvHeads: 1,
      headDim: 8,
      dtype: 'f32',
      pageSize: 4,
      seed: 3,
      nodes: [
        { parent: -1, tokens: 9 },
        { parent: 0, tokens: 5 },
        { parent: 0, tokens: 1 },
      ],
      queries: [
        [1, 4],
        [2, 0],
        [0, 3],
      ],
    };
    writeFileSync(path.join(directory, 'tree.json'), JSON.stringify(workload));
    const io = recordingIo(directory);
    expect(await main(['plan', '-w', 'tree.json', '--json', '-s', 'sequence'], io)).toBe(0);
    const report = JSON.parse(io.output()) as PlanJson;
    expect(report.workload.pathTokens).toBe(14 + 10 + 4);
    expect(report.workload.uniqueVisibleTokens).toBe(15);
  });
});
