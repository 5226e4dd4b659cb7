import type { AttentionShape } from '@deft/core';
import { directTreeAttention } from '@deft/kernels-cpu/reference';
import { planTreeAttention } from '@deft/planner';
import { randomTreeCase, relativeError, seededRandom } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaTestSkipReason } from '../../test/cuda-test-device.js';
import { type CudaAttentionKernel, type CudaBackend, createCudaBackend } from './create-cuda-backend.js';

const reason = cudaTestSkipReason;
if (reason !== '') console.info(`[kernels-cuda] GPU tests skipped: ${reason}`);

const VARIANTS: { kernel: CudaAttentionKernel; shape: AttentionShape; tolerance: number }[] = [
  // auto: wgmma for the task executor on compute capability 9.0, mma.sync elsewhere
  { kernel: 'auto', shape: { numHeads: 8, numKvHeads: 2, headDim: 128, kvDtype: 'f16' }, tolerance: 2e-3 },
  { kernel: 'auto', shape: { numHeads: 16, numKvHeads: 2, headDim: 64, kvDtype: 'f16' }, tolerance: 2e-3 },
  { kernel: 'mma', shape: { numHeads: 8, numKvHeads: 2, headDim: 128, kvDtype: 'f16' }, tolerance: 2e-3 },
  { kernel: 'mma', shape: { numHeads: 16, numKvHeads: 2, headDim: 64, kvDtype: 'f16' }, tolerance: 2e-3 },
  { kernel: 'scalar', shape: { numHeads: 8, numKvHeads: 2, headDim: 128, kvDtype: 'f16' }, tolerance: 2e-3 },
  { kernel: 'auto', shape: { numHeads: 4, numKvHeads: 2, headDim: 96, kvDtype: 'f32' }, tolerance: 1e-5 },
  // the merge kernel's other lane layouts: pairs and a straddling lane, one value at a time, 8 per lane
  { kernel: 'auto', shape: { numHeads: 4, numKvHeads: 2, headDim: 98, kvDtype: 'f32' }, tolerance: 1e-5 },
  { kernel: 'auto', shape: { numHeads: 2, numKvHeads: 2, headDim: 7, kvDtype: 'f16' }, tolerance: 2e-3 },
  { kernel: 'auto', shape: { numHeads: 8, numKvHeads: 2, headDim: 256, kvDtype: 'f16' }, tolerance: 2e-3 },
];

describe.skipIf(reason !== '')('CUDA backend on a device', () => {
  let backend: CudaBackend | undefined;
  const open = (): CudaBackend => {
    backend ??= createCudaBackend();
    return backend;
  };
  afterAll(() => backend?.dispose());

  for (let seed = 0; seed < 12; seed++) {
    const variant = VARIANTS[seed % VARIANTS.length]!;
    it(`matches the float64 reference (seed ${seed}, ${variant.kernel} ${variant.shape.kvDtype} d${variant.shape.headDim})`, async () => {
      const cuda = open();
      const tree = randomTreeCase(seed);
      const { shape } = variant;
      const random = seededRandom(seed + 1);
      const rowLength = shape.numKvHeads * shape.headDim;
      const numQueries = tree.queries.nodes.length;
      const k = Float32Array.from(
        { length: tree.numSlots * rowLength },
        () => Math.round((random() * 2 - 1) * 2048) / 2048,
      );
      const v = Float32Array.from(
        { length: tree.numSlots * rowLength },
        () => Math.round((random() * 2 - 1) * 2048) / 2048,
      );
      const q = Float32Array.from(
        { length: numQueries * shape.numHeads * shape.headDim },
        () => random() * 4 - 2,
      );
      const scale = 1 / Math.sqrt(shape.headDim);
      const expected = directTreeAttention({
        view: tree.view,
        queries: tree.queries,
        q,
        k,
        v,
        ...shape,
        scale,
      });
      const storage = cuda.createKVStorage({
        numLayers: 1,
        numPages: tree.numPages,
        pageSize: tree.pageSize,
        numKvHeads: shape.numKvHeads,
        headDim: shape.headDim,
        dtype: shape.kvDtype,
      });
      const slots = Int32Array.from({ length: tree.numSlots }, (_, index) => index);
      cuda.writeKV(storage, 0, slots, k, v);
      const roundTrip = await cuda.readKV(storage, 0, slots.subarray(0, 3));
      expect(Array.from(roundTrip.k)).toEqual(Array.from(k.subarray(0, 3 * rowLength)));
      const queryTensor = cuda.createTensor({
        shape: [numQueries, shape.numHeads, shape.headDim],
        dtype: 'f32',
      });
      const out = cuda.createTensor({ shape: [numQueries, shape.numHeads, shape.headDim], dtype: 'f32' });
      cuda.uploadTensor(queryTensor, q);
      for (const strategy of ['deft-flatten', 'deft-node', 'sequence'] as const) {
        const plan = planTreeAttention(tree.view, tree.queries, { strategy, shape });
        for (const executor of ['tasks', 'units'] as const) {
          const prepared = cuda.preparePlan(plan, shape, { kernel: variant.kernel, executor });
          cuda.uploadTensor(out, new Float32Array(out.size).fill(Number.NaN));
          cuda.treeAttention({ storage, layer: 0, plan: prepared, q: queryTensor, out, scale });
          expect(relativeError(await cuda.downloadTensor(out), expected)).toBeLessThan(variant.tolerance);
          prepared.dispose();
        }
      }
      out.dispose();
      queryTensor.dispose();
      storage.dispose();
    });
  }

  it('copies pages in every layer', async () => {
    const cuda = open();
    const storage = cuda.createKVStorage({
      numLayers: 2,
      numPages: 4,
      pageSize: 16,
      numKvHeads: 2,
      headDim: 64,
      dtype: 'f16',
    });
    const rowLength = 2 * 64;
    const values = Float32Array.from({ length: 16 * rowLength }, (_, index) => (index % 97) / 64);
    const firstPage = Int32Array.from({ length: 16 }, (_, index) => index);
    cuda.writeKV(storage, 1, firstPage, values, values);
    cuda.copyPages(storage, Int32Array.of(0), Int32Array.of(3));
    const copied = await cuda.readKV(
      storage,
      1,
      firstPage.map((slot) => slot + 48),
    );
    expect(Array.from(copied.v)).toEqual(Array.from(values));
    storage.dispose();
  });
});
