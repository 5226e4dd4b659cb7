// Times the CUDA backend's matmul alone on decode shapes (Llama-3-8B and 3.2-1B projections at several
// row counts): µs per call, weight bandwidth against the copy bandwidth, TFLOP/s. For a GPU machine:
//   ESBUILD_FLAGS=--conditions=source ../shared/gpu/prepare.sh apps/cli/src/gpu/cuda-matmul-bench.ts
//   node .gpu/app/cuda-matmul-bench.mjs [--rows 1,8,20,32,48,64,128,256] [--shapes 4096x4096,...] [--json FILE]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createCudaBackend } from '@deft/kernels-cuda';

const { values } = parseArgs({
  options: {
    rows: { type: 'string' },
    shapes: { type: 'string' },
    runs: { type: 'string' },
    json: { type: 'string' },
  },
});
const rows = (values.rows ?? '1,8,20,32,48,64,128,256').split(',').map(Number);
// n x k: 8B q/o, k/v, gate/up, down, head; 1B q/o, gate/up, down
const shapes = (
  values.shapes ?? '4096x4096,1024x4096,14336x4096,4096x14336,128256x4096,2048x2048,8192x2048,2048x8192'
)
  .split(',')
  .map((shape) => shape.split('x').map(Number) as [number, number]);
const runs = Number(values.runs ?? 20);

const backend = createCudaBackend();
const copy = backend.timing.measureCopyBandwidth({ bytes: 1 << 30 });
const results: Record<string, unknown>[] = [];
const start = backend.timing.createEvent();
const end = backend.timing.createEvent();
for (const [n, k] of shapes) {
  const weight = backend.createTensor({ shape: [n, k], dtype: 'f16' });
  backend.ops.fillUniform(weight, 1, -0.02, 0.02);
  for (const m of rows) {
    const x = backend.createTensor({ shape: [m, k], dtype: 'f32' });
    const out = backend.createTensor({ shape: [m, n], dtype: 'f32' });
    backend.ops.fillUniform(x, 2, -1, 1);
    backend.ops.matmul(x, weight, out);
    backend.timing.holdStream(20_000);
    start.record();
    for (let run = 0; run < runs; run++) backend.ops.matmul(x, weight, out);
    end.record();
    const microseconds = (end.millisecondsSince(start) * 1000) / runs;
    const gigabytes = (2 * n * k) / (microseconds * 1e3);
    results.push({
      n,
      k,
      m,
      microseconds,
      weightGigabytesPerSecond: gigabytes,
      ofCopy: gigabytes / copy.gigabytesPerSecond,
      teraflops: (2 * m * n * k) / (microseconds * 1e6),
    });
    x.dispose();
    out.dispose();
  }
  weight.dispose();
}
await backend.synchronize();
backend.dispose();
console.log(`copy ${copy.gigabytesPerSecond.toFixed(0)} GB/s; µs per matmul (weight GB/s, % of copy)`);
console.log(['n x k', ...rows.map((m) => `m=${m}`)].join(' | '));
for (const [n, k] of shapes) {
  const cells = rows.map((m) => {
    const row = results.find((entry) => entry.n === n && entry.k === k && entry.m === m)!;
    return `${(row.microseconds as number).toFixed(1)} (${(row.weightGigabytesPerSecond as number).toFixed(0)}, ${((row.ofCopy as number) * 100).toFixed(0)}%)`;
  });
  console.log([`${n}x${k}`, ...cells].join(' | '));
}
if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ copy, results }, null, 2)}\n`);
