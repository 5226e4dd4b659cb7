import {
  type AttentionShape,
  BackendError,
  DisposedError,
  f16BitsToF32,
  f32ToF16Bits,
  InvalidArgumentError,
  UnsupportedError,
} from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import { buildPagedTree, defaultQueries, SeededRandom } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { requestWebGpuDevice } from '../device/request-device.js';
import { createWebGpuBackend } from './webgpu-backend.js';
import type { WebGpuPreparedPlan } from './webgpu-prepared-plan.js';

const testDevice = await openTestDevice();
if (testDevice.handle === undefined) console.warn(`WebGPU backend tests skipped: ${testDevice.skipReason}`);

const roundF16 = (values: Float32Array): Float32Array =>
  values.map((value) => f16BitsToF32(f32ToF16Bits(value)));
const SHAPE: AttentionShape = { numHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f16' };

function smallTree() {
  const tree = buildPagedTree(
    [
      { parent: -1, tokens: 20 },
      { parent: 0, tokens: 3 },
      { parent: 0, tokens: 5 },
    ],
    4,
    { seed: 2 },
  );
  return { ...tree, queries: defaultQueries(tree.view) };
}

describe.skipIf(testDevice.handle === undefined)('WebGPU backend contract', () => {
  const device = testDevice.handle!.device;
  const backend = createWebGpuBackend({ device });
  afterAll(() => {
    backend.dispose();
    testDevice.handle?.dispose();
  });

  it('reports itself', () => {
    expect(backend.name).toBe('webgpu');
    expect(backend.capabilities.kvDtypes).toEqual(['f32', 'f16']);
    expect(backend.capabilities.strategies).toContain('deft-flatten');
    expect(backend.capabilities.device.length).toBeGreaterThan(0);
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`writes and reads KV slots (${dtype}, host arrays and device tensors, two layers)`, async () => {
      const random = new SeededRandom(3);
      const storage = backend.createKVStorage({
        numLayers: 2,
        numPages: 5,
        pageSize: 3,
        numKvHeads: 2,
        headDim: 4,
        dtype,
      });
      const slots = Int32Array.of(14, 0, 7, 3);
      const k = random.float32Array(4 * 8);
      const v = random.float32Array(4 * 8);
      backend.writeKV(storage, 1, slots, k, v);
      const kTensor = backend.createTensor({ shape: [4, 2, 4], dtype: 'f32' });
      const vTensor = backend.createTensor({ shape: [4, 2, 4], dtype: 'f32' });
      backend.uploadTensor(kTensor, v);
      backend.uploadTensor(vTensor, k);
      backend.writeKV(storage, 0, slots, kTensor, vTensor);
      const expectedK = dtype === 'f16' ? roundF16(k) : k;
      const expectedV = dtype === 'f16' ? roundF16(v) : v;
      const layer1 = await backend.readKV(storage, 1, slots);
      expect(layer1.k).toEqual(expectedK);
      expect(layer1.v).toEqual(expectedV);
      const layer0 = await backend.readKV(storage, 0, Int32Array.of(7, 14));
      expect(layer0.k).toEqual(Float32Array.of(...expectedV.slice(16, 24), ...expectedV.slice(0, 8)));
      expect(layer0.v).toEqual(Float32Array.of(...expectedK.slice(16, 24), ...expectedK.slice(0, 8)));
      storage.dispose();
      kTensor.dispose();
      vTensor.dispose();
    });
  }

  it('copies pages with the sequential meaning of the list, in every layer', async () => {
    const pageSize = 2;
    const rowValues = 4;
    const storage = backend.createKVStorage({
      numLayers: 2,
      numPages: 4,
      pageSize,
      numKvHeads: 1,
      headDim: 4,
      dtype: 'f16',
    });
    const slots = Int32Array.from({ length: 8 }, (_, index) => index);
    const values = Float32Array.from({ length: 8 * rowValues }, (_, index) => index);
    for (const layer of [0, 1])
      backend.writeKV(
        storage,
        layer,
        slots,
        values,
        values.map((value) => -value),
      );
    // 0 -> 1, then 1 -> 2 (reads the new page 1), then 3 -> 3 (nothing).
    backend.copyPages(storage, Int32Array.of(0, 1, 3), Int32Array.of(1, 2, 3));
    const page = (index: number) =>
      values.slice(index * pageSize * rowValues, (index + 1) * pageSize * rowValues);
    const expected = Float32Array.of(...page(0), ...page(0), ...page(0), ...page(3));
    for (const layer of [0, 1]) {
      const { k, v } = await backend.readKV(storage, layer, slots);
      expect(k).toEqual(expected);
      expect(v).toEqual(expected.map((value) => -value));
    }
    storage.dispose();
  });

  it('uploads and downloads f32 and f16 tensors (odd sizes)', async () => {
    const values = Float32Array.of(1, -2.5, 3.25, 65504, 1e-3);
    const f32 = backend.createTensor({ shape: [5], dtype: 'f32' });
    const f16 = backend.createTensor({ shape: [5], dtype: 'f16' });
    backend.uploadTensor(f32, values);
    backend.uploadTensor(f16, values);
    expect(await backend.downloadTensor(f32)).toEqual(values);
    expect(await backend.downloadTensor(f16)).toEqual(roundF16(values));
    f32.dispose();
    f16.dispose();
  });

  it('rejects bad arguments before changing anything', async () => {
    const storage = backend.createKVStorage({
      numLayers: 1,
      numPages: 2,
      pageSize: 2,
      numKvHeads: 1,
      headDim: 4,
      dtype: 'f32',
    });
    const ones = new Float32Array(8).fill(1);
    backend.writeKV(storage, 0, Int32Array.of(0, 1), ones, ones);
    const bad = new Float32Array(8).fill(7);
    expect(() => backend.writeKV(storage, 0, Int32Array.of(0, 4), bad, bad)).toThrow(InvalidArgumentError);
    expect(() => backend.writeKV(storage, 0, Int32Array.of(1, 1), bad, bad)).toThrow(InvalidArgumentError);
    expect(() => backend.writeKV(storage, 1, Int32Array.of(0, 1), bad, bad)).toThrow(InvalidArgumentError);
    expect(() => backend.writeKV(storage, 0, Int32Array.of(0, 1), bad.subarray(1), bad)).toThrow(
      InvalidArgumentError,
    );
    expect(() => backend.copyPages(storage, Int32Array.of(0), Int32Array.of(2))).toThrow(
      InvalidArgumentError,
    );
    expect((await backend.readKV(storage, 0, Int32Array.of(0, 1))).k).toEqual(ones);
    expect(() =>
      backend.createKVStorage({
        numLayers: 1,
        numPages: 1,
        pageSize: 1,
        numKvHeads: 1,
        headDim: 6,
        dtype: 'f32',
      }),
    ).toThrow(UnsupportedError);
    expect(() => backend.createTensor({ shape: [2, -1], dtype: 'f32' })).toThrow(InvalidArgumentError);
    const other = createWebGpuBackend({ device });
    const foreign = other.createTensor({ shape: [2, 1, 4], dtype: 'f32' });
    expect(() => backend.writeKV(storage, 0, Int32Array.of(0, 1), foreign, ones)).toThrow(
      InvalidArgumentError,
    );
    other.dispose();
    storage.dispose();
    await expect(backend.readKV(storage, 0, Int32Array.of(0))).rejects.toThrow(DisposedError);
  });

  it('checks attention arguments against the plan and the storage', () => {
    const { view, queries, numPages } = smallTree();
    const plan = planTreeAttention(view, queries, { shape: SHAPE });
    const prepared = backend.preparePlan(plan);
    const storage = backend.createKVStorage({
      numLayers: 1,
      numPages,
      pageSize: 4,
      numKvHeads: 2,
      headDim: 8,
      dtype: 'f16',
    });
    const small = backend.createKVStorage({
      numLayers: 1,
      numPages: 1,
      pageSize: 4,
      numKvHeads: 2,
      headDim: 8,
      dtype: 'f16',
    });
    const q = backend.createTensor({ shape: [queries.nodes.length, 4, 8], dtype: 'f32' });
    const wrong = backend.createTensor({ shape: [queries.nodes.length, 8, 4], dtype: 'f32' });
    const args = { storage, layer: 0, plan: prepared, q, out: q, scale: 0.25 };
    expect(() => backend.treeAttention({ ...args, out: wrong })).toThrow(InvalidArgumentError);
    expect(() => backend.treeAttention({ ...args, storage: small })).toThrow(InvalidArgumentError);
    expect(() => backend.treeAttention({ ...args, layer: 1 })).toThrow(InvalidArgumentError);
    expect(() => backend.treeAttention({ ...args, scale: Number.NaN })).toThrow(InvalidArgumentError);
    expect(() => backend.preparePlan({ ...plan, numQueries: plan.numQueries + 1 })).toThrow(
      InvalidArgumentError,
    );
    expect(() => backend.preparePlan(plan, { ...SHAPE, numHeads: 3 })).toThrow(InvalidArgumentError);
    prepared.dispose();
    prepared.dispose();
    expect(() => backend.treeAttention(args)).toThrow(DisposedError);
    for (const item of [storage, small, q, wrong]) item.dispose();
  });

  it('creates pipelines and bind groups once and reuses them across layers and calls', async () => {
    const { view, queries, numPages } = smallTree();
    const prepared = backend.preparePlan(
      planTreeAttention(view, queries, { shape: SHAPE }),
    ) as WebGpuPreparedPlan;
    const storage = backend.createKVStorage({
      numLayers: 2,
      numPages,
      pageSize: 4,
      numKvHeads: 2,
      headDim: 8,
      dtype: 'f16',
    });
    const q = backend.createTensor({ shape: [queries.nodes.length, 4, 8], dtype: 'f32' });
    const out = backend.createTensor({ shape: [queries.nodes.length, 4, 8], dtype: 'f32' });
    backend.uploadTensor(q, new Float32Array(queries.nodes.length * 32).fill(0.5));
    for (let step = 0; step < 3; step++) {
      for (const layer of [0, 1])
        backend.treeAttention({ storage, layer, plan: prepared, q, out, scale: 0.25 });
    }
    await backend.synchronize();
    expect(prepared.attentionBindGroups.size).toBe(2);
    expect(prepared.mergeBindGroups.size).toBe(1);
    expect(prepared.uniforms.size).toBe(1);
    const kernels = prepared.kernels;
    backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: 0.25 });
    expect(prepared.kernels).toBe(kernels);
    prepared.dispose();
    for (const item of [storage, q, out]) item.dispose();
  });

  it('encodes attention with timestamp writes into a caller-owned command buffer', async () => {
    if (!backend.features.timestampQuery) return;
    const { view, queries, numPages } = smallTree();
    const prepared = backend.preparePlan(planTreeAttention(view, queries, { shape: SHAPE }));
    const storage = backend.createKVStorage({
      numLayers: 1,
      numPages,
      pageSize: 4,
      numKvHeads: 2,
      headDim: 8,
      dtype: 'f16',
    });
    const q = backend.createTensor({ shape: [queries.nodes.length, 4, 8], dtype: 'f32' });
    const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
    const encoder = device.createCommandEncoder();
    backend.encodeTreeAttention(
      encoder,
      { storage, layer: 0, plan: prepared, q, out: q, scale: 1 },
      {
        querySet,
        beginningOfPassWriteIndex: 0,
        endOfPassWriteIndex: 1,
      },
    );
    device.queue.submit([encoder.finish()]);
    await backend.synchronize();
    querySet.destroy();
    prepared.dispose();
    storage.dispose();
    q.dispose();
  });

  it('surfaces WebGPU validation errors as BackendError from synchronize()', async () => {
    const { view, queries, numPages } = smallTree();
    const prepared = backend.preparePlan(planTreeAttention(view, queries, { shape: SHAPE }));
    const storage = backend.createKVStorage({
      numLayers: 1,
      numPages,
      pageSize: 4,
      numKvHeads: 2,
      headDim: 8,
      dtype: 'f16',
    });
    const q = backend.createTensor({ shape: [queries.nodes.length, 4, 8], dtype: 'f32' });
    backend.tensorBuffer(q).destroy(); // behind the backend's back: the submit is invalid
    backend.treeAttention({ storage, layer: 0, plan: prepared, q, out: q, scale: 1 });
    await expect(backend.synchronize()).rejects.toSatisfy((error: unknown) => BackendError.isInstance(error));
    await backend.synchronize(); // reported once
    prepared.dispose();
    storage.dispose();
    q.dispose();
  });

  it('is disposed idempotently and throws DisposedError afterwards', () => {
    const own = createWebGpuBackend({ device });
    const tensor = own.createTensor({ shape: [4], dtype: 'f32' });
    own.dispose();
    own.dispose();
    expect(own.disposed).toBe(true);
    expect(tensor.disposed).toBe(true);
    expect(() => own.createTensor({ shape: [1], dtype: 'f32' })).toThrow(DisposedError);
  });

  it('turns device loss into BackendError', async () => {
    const handle = await requestWebGpuDevice();
    const own = createWebGpuBackend({ device: handle.device });
    const tensor = own.createTensor({ shape: [4], dtype: 'f32' });
    handle.dispose();
    await handle.device.lost;
    expect(() => own.createTensor({ shape: [1], dtype: 'f32' })).toThrow(BackendError);
    await expect(own.downloadTensor(tensor)).rejects.toSatisfy((error: unknown) =>
      BackendError.isInstance(error),
    );
    own.dispose();
  });
});
