import type { Backend, DeviceTensor, DType, ModelBackend } from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import { relativeError, seededRandom } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaTestSkipReason } from '../../test/cuda-test-device.js';
import { type CudaBackend, createCudaBackend } from './create-cuda-backend.js';

const reason = cudaTestSkipReason;
if (reason !== '') console.info(`[kernels-cuda] model-op GPU tests skipped: ${reason}`);

function randomValues(count: number, seed: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
}

/** The same tensor on both backends. */
function pair(
  cuda: Backend,
  cpu: Backend,
  shape: number[],
  values: Float32Array,
  dtype: DType = 'f32',
): [DeviceTensor, DeviceTensor] {
  const made = [cuda, cpu].map((backend) => {
    const tensor = backend.createTensor({ shape, dtype });
    backend.uploadTensor(tensor, values);
    return tensor;
  });
  return [made[0]!, made[1]!];
}

describe.skipIf(reason !== '')('CUDA model ops against the CPU backend', () => {
  let cuda: CudaBackend | undefined;
  const cpu: ModelBackend = createCpuBackend();
  const open = (): CudaBackend => {
    cuda ??= createCudaBackend();
    return cuda;
  };
  afterAll(() => cuda?.dispose());

  const compare = async (a: DeviceTensor, b: DeviceTensor, tolerance: number) => {
    const [gpu, host] = [await open().downloadTensor(a), await cpu.downloadTensor(b)];
    expect(relativeError(gpu, host)).toBeLessThan(tolerance);
    return { gpu, host };
  };

  // fp16 weights run on tensor cores with activations rounded to fp16 (K a multiple of 32), f32 weights
  // and other K on CUDA cores in f32; M crosses every tile count of the row kernel (1-32 rows) and of the
  // tiled kernel (64 / 128 tokens per CTA from 40 rows, and at any row count for weights of 48M values),
  // partial token and weight-row tiles, K that ends inside a 64-column stage, and the split-K path of both.
  const MATMULS: { m: number; k: number; n: number; dtype: DType; tolerance: number }[] = [
    { m: 1, k: 4096, n: 1024, dtype: 'f16', tolerance: 2e-3 },
    { m: 5, k: 256, n: 100, dtype: 'f16', tolerance: 2e-3 },
    { m: 20, k: 2048, n: 512, dtype: 'f16', tolerance: 2e-3 },
    { m: 32, k: 4096, n: 256, dtype: 'f16', tolerance: 2e-3 },
    { m: 5, k: 4096, n: 12288, dtype: 'f16', tolerance: 2e-3 },
    { m: 40, k: 160, n: 130, dtype: 'f16', tolerance: 2e-3 },
    { m: 200, k: 2048, n: 1100, dtype: 'f16', tolerance: 2e-3 },
    { m: 64, k: 1024, n: 1000, dtype: 'f16', tolerance: 2e-3 },
    { m: 130, k: 512, n: 96, dtype: 'f16', tolerance: 2e-3 },
    { m: 300, k: 96, n: 70, dtype: 'f16', tolerance: 2e-3 },
    { m: 7, k: 100, n: 33, dtype: 'f16', tolerance: 1e-5 },
    { m: 9, k: 288, n: 512, dtype: 'f32', tolerance: 1e-5 },
  ];
  for (const [index, { m, k, n, dtype, tolerance }] of MATMULS.entries()) {
    it(`matmul ${m}x${k} · (${n}x${k} ${dtype})ᵀ`, async () => {
      const gpu = open();
      const [x, xHost] = pair(gpu, cpu, [m, k], randomValues(m * k, index + 1));
      const [w, wHost] = pair(gpu, cpu, [n, k], randomValues(n * k, index + 100, 1 / Math.sqrt(k)), dtype);
      const [out, outHost] = pair(gpu, cpu, [m, n], new Float32Array(m * n));
      gpu.ops.matmul(x, w, out);
      cpu.ops.matmul(xHost, wHost, outHost);
      await compare(out, outHost, tolerance);
      // A second run (the split-K tickets were reset) gives the same bits.
      const first = await gpu.downloadTensor(out);
      gpu.ops.matmul(x, w, out);
      expect(await gpu.downloadTensor(out)).toEqual(first);
    });
  }

  it('embedding, gatherRows, rmsNorm (rows and per-head groups), swiglu and add', async () => {
    const gpu = open();
    const [table, tableHost] = pair(gpu, cpu, [50, 24], randomValues(50 * 24, 3), 'f16');
    const tokens = Int32Array.of(4, 0, 49, 4, 17);
    const [hidden, hiddenHost] = pair(gpu, cpu, [5, 24], new Float32Array(5 * 24));
    gpu.ops.embedding(table, tokens, hidden);
    cpu.ops.embedding(tableHost, tokens, hiddenHost);
    await compare(hidden, hiddenHost, 1e-7);

    const [rows, rowsHost] = pair(gpu, cpu, [3, 24], new Float32Array(3 * 24));
    gpu.ops.gatherRows(hidden, Int32Array.of(4, 1, 1), rows);
    cpu.ops.gatherRows(hiddenHost, Int32Array.of(4, 1, 1), rowsHost);
    await compare(rows, rowsHost, 1e-7);

    for (const width of [24, 8]) {
      const [weight, weightHost] = pair(gpu, cpu, [width], randomValues(width, 5 + width));
      const [normed, normedHost] = pair(gpu, cpu, [5, 24], new Float32Array(5 * 24));
      gpu.ops.rmsNorm(hidden, weight, normed, 1e-5);
      cpu.ops.rmsNorm(hiddenHost, weightHost, normedHost, 1e-5);
      await compare(normed, normedHost, 1e-6);
    }

    const [gate, gateHost] = pair(gpu, cpu, [5, 24], randomValues(120, 8, 4));
    gpu.ops.swiglu(gate, hidden, gate);
    cpu.ops.swiglu(gateHost, hiddenHost, gateHost);
    await compare(gate, gateHost, 1e-6);
    gpu.ops.add(gate, hidden, hidden);
    cpu.ops.add(gateHost, hiddenHost, hiddenHost);
    await compare(hidden, hiddenHost, 1e-7);
  });

  it('matmulGroup (row and tiled kernels, mixed dtypes, more than one launch) and addRmsNorm', async () => {
    const gpu = open();
    // q / k / v-like and gate / up-like groups at decode and tree sizes; a mixed-dtype group and one of
    // five weights run as several native calls.
    const groups: { m: number; k: number; n: number[]; dtypes?: DType[] }[] = [
      { m: 20, k: 2048, n: [512, 128, 128] },
      { m: 64, k: 1024, n: [700, 700] },
      { m: 200, k: 512, n: [256, 64, 64] },
      { m: 3, k: 256, n: [40, 72, 40, 8, 16] },
      { m: 9, k: 288, n: [96, 32], dtypes: ['f16', 'f32'] },
    ];
    for (const [index, { m, k, n, dtypes }] of groups.entries()) {
      const [x, xHost] = pair(gpu, cpu, [m, k], randomValues(m * k, 40 + index));
      const weights = n.map((rows, member) =>
        pair(
          gpu,
          cpu,
          [rows, k],
          randomValues(rows * k, 50 + member, 1 / Math.sqrt(k)),
          dtypes?.[member] ?? 'f16',
        ),
      );
      const outs = n.map((rows) => pair(gpu, cpu, [m, rows], new Float32Array(m * rows)));
      gpu.ops.matmulGroup!(
        x,
        weights.map(([w]) => w),
        outs.map(([out]) => out),
      );
      for (const [member, [, weightHost]] of weights.entries())
        cpu.ops.matmul(xHost, weightHost!, outs[member]![1]!);
      for (const [out, outHost] of outs) await compare(out, outHost, 2e-3);
    }

    // Rows held in registers (width 4096), rows too wide for them (9000) and widths not a multiple of 4.
    for (const [rows, width, groupWidth] of [
      [5, 4096, 4096],
      [3, 9000, 9000],
      [4, 4098, 4098],
      [6, 256, 128],
    ] as const) {
      const [x, xHost] = pair(gpu, cpu, [rows, width], randomValues(rows * width, 60 + width, 2));
      const [residual, residualHost] = pair(gpu, cpu, [rows, width], randomValues(rows * width, 61 + width));
      const [weight, weightHost] = pair(gpu, cpu, [groupWidth], randomValues(groupWidth, 62 + width), 'f16');
      const [out, outHost] = pair(gpu, cpu, [rows, width], new Float32Array(rows * width));
      gpu.ops.addRmsNorm!(x, residual, weight, out, 1e-5);
      cpu.ops.addRmsNorm!(xHost, residualHost, weightHost, outHost, 1e-5);
      await compare(x, xHost, 1e-7);
      await compare(out, outHost, 1e-6);
      gpu.ops.rmsNorm(x, weight, out, 1e-5);
      cpu.ops.rmsNorm(xHost, weightHost, outHost, 1e-5);
      await compare(out, outHost, 1e-6);
    }
    const [x] = pair(gpu, cpu, [2, 8], randomValues(16, 70));
    const [weight] = pair(gpu, cpu, [8], randomValues(8, 71));
    const [out] = pair(gpu, cpu, [2, 8], new Float32Array(16));
    expect(() => gpu.ops.addRmsNorm!(x, x, weight, out, 1e-5)).toThrow(/must not be the same tensor/);
    expect(() => gpu.ops.addRmsNorm!(x, out, weight, out, 1e-5)).toThrow(/must not be the same tensor/);
  });

  it('rope in both pairings, with frequency factors and large positions', async () => {
    const gpu = open();
    const positions = Int32Array.of(0, 1, 4095, 131071);
    for (const style of ['interleaved', 'half'] as const) {
      for (const frequencyFactors of [
        undefined,
        Float32Array.from({ length: 32 }, (_, pair) => 1 + pair / 4),
      ]) {
        // 3 heads (one partial block of heads) and 9 (two full blocks and a partial one).
        for (const heads of [3, 9]) {
          const [x, xHost] = pair(gpu, cpu, [4, heads, 64], randomValues(4 * heads * 64, 9));
          const options = { theta: 500000, style, ...(frequencyFactors ? { frequencyFactors } : {}) };
          gpu.ops.rope(x, positions, options);
          cpu.ops.rope(xHost, positions, options);
          await compare(x, xHost, 1e-6);
        }
      }
    }
  });

  it('softmax, logSoftmax, argmax and topK (ties to the smaller column, NaN as -infinity)', async () => {
    const gpu = open();
    const columns = 128256;
    const values = randomValues(3 * columns, 11, 8);
    values[5] = 100;
    values[9] = 100; // a tie: column 5 first
    values[columns + 7] = Number.NaN;
    for (let column = 0; column < columns; column++) values[2 * columns + column] = Number.NaN;
    values[2 * columns + 3] = -1;
    const [x, xHost] = pair(gpu, cpu, [3, columns], values);
    expect(await gpu.ops.argmax(x)).toEqual(await cpu.ops.argmax(xHost));
    for (const k of [1, 8, 300]) {
      const [gpuTop, cpuTop] = [await gpu.ops.topK(x, k), await cpu.ops.topK(xHost, k)];
      expect(gpuTop.indices).toEqual(cpuTop.indices);
      expect(gpuTop.values).toEqual(cpuTop.values);
    }
    const finite = randomValues(2 * 1000, 12, 6);
    const [y, yHost] = pair(gpu, cpu, [2, 1000], finite);
    const [out, outHost] = pair(gpu, cpu, [2, 1000], new Float32Array(2000));
    gpu.ops.softmax(y, out, 0.7);
    cpu.ops.softmax(yHost, outHost, 0.7);
    await compare(out, outHost, 1e-5);
    gpu.ops.logSoftmax(y, y);
    cpu.ops.logSoftmax(yHost, yHost);
    await compare(y, yHost, 1e-6);
  });

  it('copyKVSlots moves K and V of every layer; fillUniform is seeded and bounded', async () => {
    const gpu = open();
    const descriptor = {
      numLayers: 2,
      numPages: 4,
      pageSize: 4,
      numKvHeads: 2,
      headDim: 8,
      dtype: 'f16' as const,
    };
    const storage = gpu.createKVStorage(descriptor);
    const slots = Int32Array.of(1, 6);
    const rowValues = 2 * 2 * 8;
    for (let layer = 0; layer < 2; layer++) {
      gpu.writeKV(
        storage,
        layer,
        slots,
        randomValues(rowValues, 20 + layer),
        randomValues(rowValues, 30 + layer),
      );
    }
    gpu.ops.copyKVSlots(storage, slots, Int32Array.of(9, 14));
    for (let layer = 0; layer < 2; layer++) {
      const before = await gpu.readKV(storage, layer, slots);
      const after = await gpu.readKV(storage, layer, Int32Array.of(9, 14));
      expect(after).toEqual(before);
    }
    storage.dispose();

    const weight = gpu.createTensor({ shape: [1000, 37], dtype: 'f16' });
    gpu.ops.fillUniform(weight, 5, -0.5, 0.5);
    const values = await gpu.downloadTensor(weight);
    gpu.ops.fillUniform(weight, 5, -0.5, 0.5);
    expect(await gpu.downloadTensor(weight)).toEqual(values);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(-0.5);
    expect(Math.max(...values)).toBeLessThanOrEqual(0.5);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
  });

  it('measures a tensor-core rate and a copy bandwidth the floor can use', () => {
    const gpu = open();
    expect(gpu.timing.measureTensorRate({ runs: 3 }).teraflops).toBeGreaterThan(10);
    expect(gpu.timing.measureCopyBandwidth({ bytes: 1 << 26, runs: 3 }).gigabytesPerSecond).toBeGreaterThan(
      100,
    );
  });
});
