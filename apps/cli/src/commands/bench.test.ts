import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../bench/bench-result.js';
import { recordingIo } from '../cli/cli-io.js';
import { main } from '../main.js';

describe('deft bench on the CPU', () => {
  it('runs every strategy against the sequence baseline and writes JSON', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-bench-'));
    writeFileSync(
      path.join(directory, 'tiny.json'),
      JSON.stringify({
        name: 'tiny',
        heads: 8,
        kvHeads: 2,
        headDim: 16,
        dtype: 'f32',
        pageSize: 4,
        seed: 5,
        nodes: [
          { parent: -1, tokens: 37 },
          { parent: 0, tokens: 5 },
          { parent: 0, tokens: 1 },
          { parent: 1, tokens: 9 },
        ],
      }),
    );
    const io = recordingIo(directory);
    const code = await main(
      ['bench', '--backend', 'cpu', '--workloads', 'tiny.json,beam-w8', '--json', 'out.json', '-r', '2'],
      io,
    );
    expect(code).toBe(0);
    const report = JSON.parse(readFileSync(path.join(directory, 'out.json'), 'utf8')) as BenchReport;
    expect(report.backend.name).toBe('cpu');
    expect(report.backend.note).toMatch(/float64 reference/);
    expect(report.settings.repetitions).toBe(2);
    expect(report.results).toHaveLength(2 * 4);
    for (const row of report.results) {
      expect(row.layerMicroseconds.median).toBeGreaterThan(0);
      expect(row.layerMicroseconds.runs).toBe(2);
      expect(row.io.uniqueKvBytes).toBeGreaterThan(0);
      if (row.strategy === 'sequence') expect(row.vsSequence).toEqual({ time: 1, kvBytes: 1 });
      else expect(row.vsSequence.kvBytes).toBeLessThan(1);
    }
    const tiny = report.workloads.find((workload) => workload.name === 'tiny')!;
    expect(tiny.pathTokens).toBe(37 + 1 + 37 + 5 + 9);
    // Progress went to stderr as one line per item; the table and the note to stdout.
    expect(io.errors().trimEnd().split('\n')).toHaveLength(8);
    expect(io.output()).toMatch(/note: CPU timings are of the float64 reference backend/);
    expect(io.output()).toMatch(/^beam-w8\n {2}deft-flatten /m);
    // The table and the prose around it fit a normal terminal.
    for (const line of io.output().split('\n')) expect([...line].length).toBeLessThanOrEqual(100);
    expect(io.output()).toMatch(/wrote out\.json/);
  });

  it('checks the --json path before running anything', async () => {
    const io = recordingIo();
    const code = await main(['bench', '-b', 'cpu', '-w', 'beam-w8', '--json', '/no/such/dir/x.json'], io);
    expect(code).toBe(2);
    expect(io.errors()).toMatch(
      /--json \/no\/such\/dir\/x\.json: the directory \/no\/such\/dir does not exist/,
    );
    expect(io.errors().trimEnd().split('\n')).toHaveLength(1); // no progress: nothing ran
    expect(io.output()).toBe('');
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-bench-'));
    const intoDirectory = recordingIo(directory);
    expect(await main(['bench', '-b', 'cpu', '-w', 'beam-w8', '--json', '.'], intoDirectory)).toBe(2);
    expect(intoDirectory.errors()).toMatch(/is a directory/);
  });

  it('prints the table even when writing the JSON fails at the end', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-bench-'));
    const output = path.join(directory, 'out');
    mkdirSync(output);
    const recorded = recordingIo(directory);
    // The output directory disappears while the bench runs (at its first progress line).
    const io = {
      ...recorded,
      stderr: (text: string) => {
        rmSync(output, { recursive: true, force: true });
        recorded.stderr(text);
      },
    };
    const code = await main(
      ['bench', '-b', 'cpu', '-w', 'beam-w8', '-s', 'deft-node', '--json', 'out/x.json'],
      io,
    );
    expect(code).toBe(1);
    expect(recorded.output()).toMatch(/^beam-w8\n {2}deft-node /m);
    expect(recorded.errors()).toMatch(
      /could not write out\/x\.json \(ENOENT.*\); the table above holds the results/,
    );
  });

  it('always measures the sequence baseline, and prints JSON to stdout with --json -', async () => {
    const io = recordingIo();
    expect(await main(['bench', '-b', 'cpu', '-w', 'beam-w8', '-s', 'deft-node', '--json', '-'], io)).toBe(0);
    const report = JSON.parse(io.output()) as BenchReport;
    expect(report.results.map((row) => row.strategy)).toEqual(['deft-node', 'sequence']);
    expect(report.results[0]!.vsSequence.kvBytes).toBeCloseTo(9.34 / 41.2, 2);
  });

  it('fails with a clear error when an explicitly requested GPU backend is unavailable', async () => {
    const io = recordingIo();
    const code = await main(['bench', '--backend', 'cuda', '--workloads', 'sd-t64', '--json', '-'], io);
    if (code === 0) return; // a machine with CUDA
    expect(code).toBe(1);
    expect(io.errors()).toMatch(/^deft bench: .*cuda/m);
  });
});
