import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import type { E2eRow } from '../e2e/run-e2e-bench.js';
import { main } from '../main.js';

describe('deft bench-e2e on the CPU', () => {
  it('decodes a step of each workload with DeFT and sequence attention and writes JSON', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-bench-e2e-'));
    const io = recordingIo(directory);
    const argv = ['bench-e2e', '--backend', 'cpu', '--workloads', 'sd-t64,beam-w8', '--runs', '1'];
    expect(await main([...argv, '--json', 'e2e.json'], io)).toBe(0);
    const report = JSON.parse(readFileSync(path.join(directory, 'e2e.json'), 'utf8')) as {
      format: string;
      model: { name: string; numLayers: number };
      rows: E2eRow[];
    };
    expect(report.format).toBe('deft-bench-e2e');
    expect(report.model).toMatchObject({ name: 'tiny', numLayers: 2 });
    expect(report.rows.map((row) => `${row.workload}/${row.strategy}`)).toEqual([
      'sd-t64/deft-flatten',
      'sd-t64/sequence',
      'beam-w8/deft-flatten',
      'beam-w8/sequence',
    ]);
    for (const row of report.rows) {
      expect(row.stepMilliseconds).toBeGreaterThan(0);
      expect(row.tokensPerSecond).toBeGreaterThan(0);
      expect(row.weightBytes).toBe(2 * (2 * (64 * 8 * 16 + 4 * 16 * 64 + 3 * 64 * 128) + 512 * 64));
    }
    const [deft, sequence] = report.rows;
    expect(deft!.queries).toBe(64);
    // sd-t64: 64 queries over a 1000-token prefix: sequence reads the prefix 64 times, DeFT once.
    expect(sequence!.kvReadBytes / deft!.kvReadBytes).toBeGreaterThan(30);
    expect(io.output()).toMatch(/^sd-t64: deft-flatten [\d.]+x over sequence$/m);
    for (const line of io.output().split('\n')) expect([...line].length).toBeLessThanOrEqual(100);
  }, 60_000);

  it('refuses a model the CPU cannot hold and an unknown workload, before any work', async () => {
    const big = recordingIo();
    expect(await main(['bench-e2e', '--backend', 'cpu', '--model', 'llama3-8b'], big)).toBe(2);
    expect(big.errors()).toMatch(/needs the cuda backend/);
    const unknown = recordingIo();
    expect(await main(['bench-e2e', '--backend', 'cpu', '--workloads', 'nope'], unknown)).toBe(2);
    expect(unknown.errors()).toMatch(/unknown workload 'nope'/);
  });
});
