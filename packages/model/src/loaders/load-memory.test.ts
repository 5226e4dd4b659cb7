import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ggufMatrix, type TestTensor, writeGguf } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';

const packageRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const hasProc = process.platform === 'linux';
if (!hasProc) console.warn('skipped: peak memory is read from /proc/self/status (Linux only)');

/** A Llama-shaped GGUF of about `layers · 31` MB in F16 (matrix bytes are a fixed pattern: only the size matters). */
function writeLargeModel(file: string, type: number, layers: number): void {
  const [dim, hidden, vocab] = [1024, 2816, 512];
  const values = (count: number) => new Float32Array(count).fill(0.01);
  const tensors: TestTensor[] = [
    ggufMatrix('token_embd.weight', values(vocab * dim), vocab, dim, type),
    { name: 'output_norm.weight', shape: [dim], type: 0, data: new Uint8Array(dim * 4) },
  ];
  for (let layer = 0; layer < layers; layer++) {
    const block = `blk.${layer}.`;
    tensors.push(
      { name: `${block}attn_norm.weight`, shape: [dim], type: 0, data: new Uint8Array(dim * 4) },
      { name: `${block}ffn_norm.weight`, shape: [dim], type: 0, data: new Uint8Array(dim * 4) },
      ggufMatrix(`${block}attn_q.weight`, values(dim * dim), dim, dim, type),
      ggufMatrix(`${block}attn_k.weight`, values(dim * dim), dim, dim, type),
      ggufMatrix(`${block}attn_v.weight`, values(dim * dim), dim, dim, type),
      ggufMatrix(`${block}attn_output.weight`, values(dim * dim), dim, dim, type),
      ggufMatrix(`${block}ffn_gate.weight`, values(hidden * dim), hidden, dim, type),
      ggufMatrix(`${block}ffn_up.weight`, values(hidden * dim), hidden, dim, type),
      ggufMatrix(`${block}ffn_down.weight`, values(dim * hidden), dim, hidden, type),
    );
  }
  const tied = tensors; // no output.weight: tied embeddings
  writeFileSync(
    file,
    writeGguf(
      {
        'general.architecture': { type: 'string', value: 'llama' },
        'llama.embedding_length': { type: 'u32', value: dim },
        'llama.feed_forward_length': { type: 'u32', value: hidden },
        'llama.block_count': { type: 'u32', value: layers },
        'llama.attention.head_count': { type: 'u32', value: 16 },
        'llama.attention.head_count_kv': { type: 'u32', value: 16 },
        'llama.context_length': { type: 'u32', value: 2048 },
      },
      tied,
    ),
  );
}

function measure(file: string, create: boolean) {
  const output = execFileSync(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      'test/measure-load-memory.ts',
      file,
      ...(create ? ['--create'] : []),
    ],
    { cwd: packageRoot, encoding: 'utf8' },
  );
  return JSON.parse(output.trim().split('\n').at(-1)!) as {
    fileBytes: number;
    before: number;
    loaded: number;
    created: number;
  };
}

describe.skipIf(!hasProc)('host memory while loading', () => {
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-load-memory-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  for (const [name, type, layers] of [
    ['F16', 1, 6],
    ['Q4_K', 12, 20],
  ] as const) {
    it(`${name}: loading takes at most 1.2 x the file size`, () => {
      const file = path.join(directory, `${name}.gguf`);
      writeLargeModel(file, type, layers);
      const result = measure(file, true);
      const loading = (result.loaded - result.before) / result.fileBytes;
      const creating = (result.created - result.before) / result.fileBytes;
      console.log(
        `${name}: file ${(result.fileBytes / 2 ** 20).toFixed(0)} MiB, peak while loading ${loading.toFixed(2)} x, ` +
          `with the model on the CPU backend ${creating.toFixed(2)} x`,
      );
      expect(loading).toBeLessThanOrEqual(1.2);
    }, 300_000);
  }
});
