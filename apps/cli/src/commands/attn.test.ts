import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { main } from '../main.js';
import { BUILTIN_WORKLOADS } from '../workloads/builtin.js';

interface AttnJson {
  workload: { name: string; heads: number; dtype: string; queries: number };
  strategy: string;
  layerMicroseconds: number;
  check?: { relativeError: number; tolerance: number; passed: boolean };
  dump?: string[];
}

async function attn(...argv: string[]): Promise<{ code: number; report: AttnJson; errors: string }> {
  const io = recordingIo();
  const code = await main(['attn', ...argv, '--json'], io);
  return { code, report: JSON.parse(io.output()) as AttnJson, errors: io.errors() };
}

// Full Llama-3-8B shapes take seconds per workload on the float64 reference; the sweep over every
// built-in tree runs the same command on a reduced shape (4 query heads, 2 KV heads, head dim 32).
const SMALL_SHAPE = ['--heads', '4', '--kv-heads', '2', '--head-dim', '32'];

describe('deft attn --check', () => {
  it.each(BUILTIN_WORKLOADS.map((workload) => workload.name))(
    'passes on %s (reduced heads)',
    async (name) => {
      const { code, report, errors } = await attn('--workload', name, '--check', ...SMALL_SHAPE);
      expect(errors).toBe('');
      expect(code).toBe(0);
      expect(report.check!.passed).toBe(true);
      expect(report.check!.tolerance).toBe(2e-3);
      expect(report.check!.relativeError).toBeLessThan(1e-5); // K/V are exact in f16; the backend computes in f32+
    },
  );

  it('passes on the full Llama-3-8B shape of beam-w8', async () => {
    const { code, report } = await attn('--workload', 'beam-w8', '--check');
    expect(code).toBe(0);
    expect(report.workload.heads).toBe(32);
    expect(report.check!.passed).toBe(true);
  });

  it.each(['deft-flatten', 'deft-node', 'deft-node-chunk', 'sequence'])(
    'passes with f32 KV, page size 1 and strategy %s within 1e-5',
    async (strategy) => {
      const { code, report } = await attn(
        '--workload',
        'reasoning',
        '--check',
        '--strategy',
        strategy,
        '--dtype',
        'f32',
        '--page-size',
        '1',
        ...SMALL_SHAPE,
      );
      expect(code).toBe(0);
      expect(report.strategy).toBe(strategy);
      expect(report.check!.tolerance).toBe(1e-5);
      expect(report.check!.passed).toBe(true);
    },
  );
});

describe('deft attn --dump', () => {
  it('writes files another tool can check the output with', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-dump-'));
    const { code } = await attn(
      '--workload',
      'beam-w8',
      '--dump',
      directory,
      '--heads',
      '4',
      '--kv-heads',
      '2',
      '--head-dim',
      '16',
    );
    expect(code).toBe(0);
    const meta = JSON.parse(readFileSync(path.join(directory, 'meta.json'), 'utf8')) as {
      heads: number;
      kvHeads: number;
      headDim: number;
      scale: number;
      numQueries: number;
      treeTokens: number;
      nodes: { parent: number; tokens: number }[];
      queries: [number, number][];
    };
    const read = (name: string) => {
      const bytes = readFileSync(path.join(directory, name));
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return Float32Array.from({ length: bytes.byteLength / 4 }, (_, index) =>
        view.getFloat32(index * 4, true),
      );
    };
    const q = read('q.bin');
    const k = read('k.bin');
    const v = read('v.bin');
    const out = read('out.bin');
    const { heads, kvHeads, headDim, numQueries, treeTokens } = meta;
    expect(treeTokens).toBe(1000 + 20 * 64);
    expect(numQueries).toBe(8);
    expect(q.length).toBe(numQueries * heads * headDim);
    expect(k.length).toBe(treeTokens * kvHeads * headDim);
    expect(v.length).toBe(k.length);
    expect(out.length).toBe(q.length);
    // Recompute the output from the files alone: each query sees its ancestors and its node up to its position.
    const nodeStart: number[] = [];
    let offset = 0;
    for (const node of meta.nodes) {
      nodeStart.push(offset);
      offset += node.tokens;
    }
    let worst = 0;
    meta.queries.forEach(([node, position], query) => {
      const visible: number[] = [];
      for (let token = 0; token <= position; token++) visible.push(nodeStart[node]! + token);
      for (let ancestor = meta.nodes[node]!.parent; ancestor >= 0; ancestor = meta.nodes[ancestor]!.parent) {
        for (let token = 0; token < meta.nodes[ancestor]!.tokens; token++)
          visible.push(nodeStart[ancestor]! + token);
      }
      for (let head = 0; head < heads; head++) {
        const kvHead = Math.floor(head / (heads / kvHeads));
        const qRow = (query * heads + head) * headDim;
        const scores = visible.map((token) => {
          let dot = 0;
          for (let dim = 0; dim < headDim; dim++)
            dot += q[qRow + dim]! * k[(token * kvHeads + kvHead) * headDim + dim]!;
          return dot * meta.scale;
        });
        const max = Math.max(...scores);
        const weights = scores.map((score) => Math.exp(score - max));
        const total = weights.reduce((sum, weight) => sum + weight, 0);
        for (let dim = 0; dim < headDim; dim++) {
          let value = 0;
          visible.forEach((token, index) => {
            value += weights[index]! * v[(token * kvHeads + kvHead) * headDim + dim]!;
          });
          worst = Math.max(worst, Math.abs(value / total - out[qRow + dim]!));
        }
      }
    });
    expect(worst).toBeLessThan(1e-5);
  });
});
