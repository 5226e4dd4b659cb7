import {
  BACKEND_CONTRACT_VERSION,
  DisposedError,
  InvalidArgumentError,
  isModelBackend,
  type TreeAttentionPlan,
} from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import { buildPagedTree, createRecordingBackend, defaultQueries } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from './create-cpu-backend.js';

const storageDescriptor = {
  numLayers: 2,
  numPages: 4,
  pageSize: 2,
  numKvHeads: 2,
  headDim: 3,
  dtype: 'f32' as const,
};

function expectThrows(
  run: () => unknown,
  type: { isInstance(value: unknown): boolean },
  argument?: string,
): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(type.isInstance(thrown), String(thrown)).toBe(true);
  if (argument !== undefined) expect((thrown as InvalidArgumentError).argument).toBe(argument);
}

function smallCase(): { plan: TreeAttentionPlan; numQueries: number } {
  const { view } = buildPagedTree(
    [
      { parent: -1, tokens: 3 },
      { parent: 0, tokens: 2 },
      { parent: 0, tokens: 1 },
    ],
    2,
  );
  const plan = planTreeAttention(view, defaultQueries(view), {
    shape: { numHeads: 4, numKvHeads: 2, headDim: 3, kvDtype: 'f32' },
  });
  return { plan, numQueries: 2 };
}

describe('createCpuBackend', () => {
  it('reports the contract and is a model backend', () => {
    const backend = createCpuBackend();
    expect(backend.contractVersion).toBe(BACKEND_CONTRACT_VERSION);
    expect(backend.name).toBe('cpu');
    expect(backend.capabilities.kvDtypes).toEqual(['f32', 'f16']);
    expect(isModelBackend(backend)).toBe(true);
  });

  it('uploads and downloads f32 and f16 tensors', async () => {
    const backend = createCpuBackend();
    const f32 = backend.createTensor({ shape: [2, 2], dtype: 'f32' });
    backend.uploadTensor(f32, Float32Array.of(1, 2.5, -3, 0.1));
    expect(Array.from(await backend.downloadTensor(f32))).toEqual(
      Array.from(Float32Array.of(1, 2.5, -3, 0.1)),
    );
    const f16 = backend.createTensor({ shape: [3], dtype: 'f16' });
    backend.uploadTensor(f16, Float32Array.of(1, 2.5, 0.1));
    const back = await backend.downloadTensor(f16);
    expect(back[1]).toBe(2.5);
    expect(Math.abs(back[2]! - 0.1)).toBeLessThan(1e-4);
    expectThrows(() => backend.uploadTensor(f32, new Float32Array(3)), InvalidArgumentError, 'data');
    expectThrows(
      () => backend.createTensor({ shape: [2, -1], dtype: 'f32' }),
      InvalidArgumentError,
      'descriptor.shape[1]',
    );
    expectThrows(
      () => backend.createTensor({ shape: [2], dtype: 'bf16' as never }),
      InvalidArgumentError,
      'descriptor.dtype',
    );
  });

  it('writes, reads and copies KV pages in f32 and f16', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const backend = createCpuBackend();
      const storage = backend.createKVStorage({ ...storageDescriptor, dtype });
      const k = Float32Array.from({ length: 2 * 6 }, (_, index) => index + 0.5);
      const v = Float32Array.from({ length: 2 * 6 }, (_, index) => -index);
      backend.writeKV(storage, 1, Int32Array.of(2, 5), k, v);
      const read = await backend.readKV(storage, 1, Int32Array.of(5, 2));
      expect(Array.from(read.k)).toEqual([...Array.from(k.subarray(6)), ...Array.from(k.subarray(0, 6))]);
      expect(Array.from(read.v.subarray(6))).toEqual(Array.from(v.subarray(0, 6)));
      expect(Array.from((await backend.readKV(storage, 0, Int32Array.of(2))).k)).toEqual([0, 0, 0, 0, 0, 0]);
      // Page 1 holds slots 2, 3 and page 2 holds slots 4, 5: swap them in one call.
      backend.copyPages(storage, Int32Array.of(1, 2), Int32Array.of(2, 1));
      const swapped = await backend.readKV(storage, 1, Int32Array.of(4, 3));
      expect(Array.from(swapped.k)).toEqual([...Array.from(k.subarray(0, 6)), ...Array.from(k.subarray(6))]);
    }
  });

  it('rejects bad KV arguments without writing anything', async () => {
    const backend = createCpuBackend();
    const storage = backend.createKVStorage(storageDescriptor);
    const row = new Float32Array(6).fill(1);
    expectThrows(
      () => backend.writeKV(storage, 2, Int32Array.of(0), row, row),
      InvalidArgumentError,
      'layer',
    );
    expectThrows(
      () => backend.writeKV(storage, 0, Int32Array.of(0, 8), new Float32Array(12), new Float32Array(12)),
      InvalidArgumentError,
      'slots[1]',
    );
    expectThrows(
      () => backend.writeKV(storage, 0, Int32Array.of(0), row, new Float32Array(5)),
      InvalidArgumentError,
      'v',
    );
    expectThrows(
      () => backend.writeKV(storage, 0, [0] as unknown as Int32Array, row, row),
      InvalidArgumentError,
      'slots',
    );
    expect(Array.from((await backend.readKV(storage, 0, Int32Array.of(0))).k)).toEqual([0, 0, 0, 0, 0, 0]);
    expectThrows(
      () => backend.copyPages(storage, Int32Array.of(0), Int32Array.of(4)),
      InvalidArgumentError,
      'target[0]',
    );
    expectThrows(
      () => backend.copyPages(storage, Int32Array.of(0, 1), Int32Array.of(2, 2)),
      InvalidArgumentError,
      'target[1]',
    );
    expectThrows(
      () => backend.createKVStorage({ ...storageDescriptor, numPages: 0 }),
      InvalidArgumentError,
      'descriptor.numPages',
    );
    const other = createCpuBackend();
    expectThrows(
      () => other.writeKV(storage, 0, Int32Array.of(0), row, row),
      InvalidArgumentError,
      'storage',
    );
  });

  it('validates tree attention arguments', () => {
    const backend = createCpuBackend();
    const storage = backend.createKVStorage(storageDescriptor);
    const { plan, numQueries } = smallCase();
    const prepared = backend.preparePlan(plan);
    const q = backend.createTensor({ shape: [numQueries, 4, 3], dtype: 'f32' });
    const out = backend.createTensor({ shape: [numQueries, 4, 3], dtype: 'f32' });
    backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: 1 });
    const wrongQ = backend.createTensor({ shape: [numQueries, 3, 3], dtype: 'f32' });
    expectThrows(
      () => backend.treeAttention({ storage, layer: 0, plan: prepared, q: wrongQ, out, scale: 1 }),
      InvalidArgumentError,
      'q.shape',
    );
    const halfOut = backend.createTensor({ shape: [numQueries, 4, 3], dtype: 'f16' });
    expectThrows(
      () => backend.treeAttention({ storage, layer: 0, plan: prepared, q, out: halfOut, scale: 1 }),
      InvalidArgumentError,
      'out.dtype',
    );
    expectThrows(
      () => backend.treeAttention({ storage, layer: 5, plan: prepared, q, out, scale: 1 }),
      InvalidArgumentError,
      'layer',
    );
    expectThrows(
      () => backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: Number.NaN }),
      InvalidArgumentError,
      'scale',
    );
    const small = backend.createKVStorage({ ...storageDescriptor, numPages: 1 });
    expectThrows(
      () => backend.treeAttention({ storage: small, layer: 0, plan: prepared, q, out, scale: 1 }),
      InvalidArgumentError,
      'plan.tokenSlots',
    );
    const otherPageSize = backend.createKVStorage({ ...storageDescriptor, pageSize: 4 });
    expectThrows(
      () => backend.treeAttention({ storage: otherPageSize, layer: 0, plan: prepared, q, out, scale: 1 }),
      InvalidArgumentError,
      'plan.pageSize',
    );
    const shaped = backend.preparePlan(plan, { numHeads: 8, numKvHeads: 2, headDim: 3, kvDtype: 'f32' });
    expectThrows(
      () => backend.treeAttention({ storage, layer: 0, plan: shaped, q, out, scale: 1 }),
      InvalidArgumentError,
      'plan',
    );
    expectThrows(
      () => backend.preparePlan({ ...plan, numPartials: plan.numPartials + 1 }),
      InvalidArgumentError,
    );
    expectThrows(
      () => createCpuBackend().treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: 1 }),
      InvalidArgumentError,
      'storage',
    );
  });

  it('refuses NaN: a non-finite output throws and leaves out unchanged', async () => {
    const backend = createCpuBackend();
    const storage = backend.createKVStorage(storageDescriptor);
    const { plan, numQueries } = smallCase();
    const q = backend.createTensor({ shape: [numQueries, 4, 3], dtype: 'f32' });
    backend.uploadTensor(q, new Float32Array(numQueries * 12).fill(Number.NaN));
    const out = backend.createTensor({ shape: [numQueries, 4, 3], dtype: 'f32' });
    backend.uploadTensor(out, new Float32Array(numQueries * 12).fill(7));
    let thrown: unknown;
    try {
      backend.treeAttention({ storage, layer: 0, plan: backend.preparePlan(plan), q, out, scale: 1 });
    } catch (error) {
      thrown = error;
    }
    expect(String(thrown)).toMatch(/non-finite/);
    expect(Array.from(await backend.downloadTensor(out)).every((value) => value === 7)).toBe(true);
  });

  it('disposes idempotently and throws DisposedError afterwards', async () => {
    const backend = createCpuBackend();
    const storage = backend.createKVStorage(storageDescriptor);
    const tensor = backend.createTensor({ shape: [1], dtype: 'f32' });
    const { plan } = smallCase();
    const prepared = backend.preparePlan(plan);
    tensor.dispose();
    tensor.dispose();
    expect(tensor.disposed).toBe(true);
    expectThrows(() => backend.uploadTensor(tensor, new Float32Array(1)), DisposedError);
    prepared.dispose();
    expect(prepared.disposed).toBe(true);
    backend.dispose();
    backend.dispose();
    expect(backend.disposed).toBe(true);
    expect(storage.disposed).toBe(true);
    expectThrows(() => backend.createTensor({ shape: [1], dtype: 'f32' }), DisposedError);
    expectThrows(() => backend.preparePlan(plan), DisposedError);
    await expect(backend.synchronize()).rejects.toSatisfy((error) => DisposedError.isInstance(error));
  });

  it('works behind the recording backend of the testing package', async () => {
    const backend = createRecordingBackend(createCpuBackend());
    const tensor = backend.createTensor({ shape: [2], dtype: 'f32' });
    backend.uploadTensor(tensor, Float32Array.of(1, 2));
    expect(Array.from(await backend.downloadTensor(tensor))).toEqual([1, 2]);
    expect(backend.calls.map((call) => call.method)).toEqual([
      'createTensor',
      'uploadTensor',
      'downloadTensor',
    ]);
  });
});
