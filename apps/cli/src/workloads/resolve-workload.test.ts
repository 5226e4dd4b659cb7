import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { UsageError } from '../errors/usage-error.js';
import { main } from '../main.js';
import { datasetAvailable } from './replay/deft-dataset.js';
import { REPLAYED_WORKLOAD_NAMES, resolveReplay, resolveWorkload } from './resolve-workload.js';

const cwd = process.cwd();

function usageMessage(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (UsageError.isInstance(error)) return error.message;
    throw error;
  }
  throw new Error('expected a UsageError');
}

describe('resolveWorkload', () => {
  it('resolves built-in names', () => {
    expect(resolveWorkload('sd-t64', { cwd }).nodes).toHaveLength(65);
  });

  it('rejects unknown names and malformed replay names on one line', () => {
    expect(usageMessage(() => resolveWorkload('few-shot', { cwd }))).toMatch(
      /^unknown workload 'few-shot': use a built-in name/,
    );
    expect(usageMessage(() => resolveWorkload('tot:chess:0', { cwd }))).toMatch(
      /reasoning trees are tot:\{docmerge/,
    );
    expect(usageMessage(() => resolveWorkload('sd:apps65', { cwd }))).toMatch(
      /speculative records are sd:apps\{32,64,128,256\}/,
    );
    expect(usageMessage(() => resolveReplay('sd-t64'))).toMatch(/--replay needs a replayed record/);
  });

  it('reports a missing workload file as a missing file, and a directory as a directory', () => {
    expect(usageMessage(() => resolveWorkload('no-such-dir/tree.json', { cwd }))).toMatch(
      /^workload file no-such-dir\/tree.json does not exist \(looked for .*no-such-dir\/tree.json\)/,
    );
    expect(usageMessage(() => resolveWorkload('tree.json', { cwd }))).toMatch(
      /^workload file tree.json does not exist/,
    );
    expect(usageMessage(() => resolveWorkload('.', { cwd }))).toMatch(/is a directory, expected a workload/);
  });
});

describe.skipIf(!datasetAvailable())('replayed workloads of the DeFT dataset', () => {
  it('resolves every replayed workload deft bench uses', () => {
    for (const name of REPLAYED_WORKLOAD_NAMES) {
      const workload = resolveWorkload(name, { cwd });
      expect(workload.name.startsWith(name)).toBe(true);
      expect(workload.queries!.length).toBeGreaterThan(0);
    }
  });

  it('takes a step from the name or from the options', () => {
    expect(resolveWorkload('tot:docmerge:0', { cwd }).name).toBe('tot:docmerge:0:1495');
    expect(resolveWorkload('tot:docmerge:0:10', { cwd }).name).toBe('tot:docmerge:0:10');
    expect(resolveWorkload('tot:docmerge:0', { cwd, step: 12 }).name).toBe('tot:docmerge:0:12');
    expect(resolveWorkload('sd:apps64:0:3', { cwd }).nodes[0]!.tokens).toBe(
      resolveWorkload('sd:apps64', { cwd }).nodes[0]!.tokens + 1 + 4 + 5,
    );
    expect(usageMessage(() => resolveWorkload('tot:docmerge:0:99999', { cwd }))).toMatch(
      /no node is live at step 99999/,
    );
    expect(usageMessage(() => resolveWorkload('sd:apps64:0:401', { cwd }))).toMatch(
      /step must be a verification step 0 \.\. 400/,
    );
  });

  it('deft plan --replay sums the IO model over every verification step', async () => {
    const io = recordingIo();
    expect(
      await main(['plan', '--workload', 'sd:apps32', '--replay', '--strategy', 'deft-flatten', '--json'], io),
    ).toBe(0);
    const report = JSON.parse(io.output()) as {
      steps: number;
      maxQueries: number;
      plans: { strategy: string; kvBytesRead: number; uniqueKvBytes: number; kvReadToSequence: number }[];
    };
    expect(report.steps).toBe(401);
    expect(report.maxQueries).toBe(32);
    expect(report.plans.map((plan) => plan.strategy)).toEqual(['deft-flatten', 'sequence']);
    const [flatten, sequence] = report.plans;
    expect(Math.abs(flatten!.kvBytesRead / flatten!.uniqueKvBytes - 1)).toBeLessThanOrEqual(0.02);
    expect(sequence!.kvBytesRead).toBeGreaterThan(10 * flatten!.kvBytesRead);
  });
});
