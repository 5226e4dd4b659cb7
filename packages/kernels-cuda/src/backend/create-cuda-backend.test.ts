import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AttentionShape, TreeAttentionPlan } from '@deft/core';
import { BackendError, CapacityError, DisposedError, InvalidArgumentError } from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import { buildPagedTree, defaultQueries } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { type CudaAddon, loadCudaAddon } from '../native/load-addon.js';
import { HEADER_FIELDS } from '../plan/pack-schedule.js';
import { type CudaAttentionKernel, createCudaBackend } from './create-cuda-backend.js';

const localBuild = fileURLToPath(new URL('../../native/build/Release/deft_cuda.node', import.meta.url));
const addonBuilt = existsSync(localBuild);
const deviceCount = addonBuilt ? loadCudaAddon().probe().deviceCount : 0;

/** An addon stand-in with one fake device that records every call. */
function fakeAddon(): { addon: CudaAddon; calls: string[] } {
  const calls: string[] = [];
  let next = 1;
  const handle = (name: string) => () => {
    calls.push(name);
    return next++;
  };
  const record = (name: string) => () => {
    calls.push(name);
  };
  const addon = {
    abiVersion: 3,
    probe: () => ({
      deviceCount: 1,
      error: 0,
      errorName: '',
      errorMessage: '',
      driverVersion: 13000,
      runtimeVersion: 13000,
    }),
    createContext: handle('createContext'),
    destroyContext: record('destroyContext'),
    deviceInfo: () => ({
      name: 'Fake GPU',
      ordinal: 0,
      multiprocessors: 132,
      computeCapability: '9.0',
      l2Bytes: 50 << 20,
      sharedBytesPerBlock: 227 << 10,
      totalMemory: 80e9,
      ringStagesLimit: 6,
    }),
    synchronize: record('synchronize'),
    allocate: handle('allocate'),
    freeBuffer: record('freeBuffer'),
    upload: record('upload'),
    uploadF32AsF16: record('uploadF32AsF16'),
    download: record('download'),
    downloadF16AsF32: record('downloadF16AsF32'),
    fillF32: record('fillF32'),
    copyBuffer: record('copyBuffer'),
    createStorage: handle('createStorage'),
    freeStorage: record('freeStorage'),
    writeKv: record('writeKv'),
    readKv: record('readKv'),
    copyPages: record('copyPages'),
    preparePlan: () => {
      calls.push('preparePlan');
      return { handle: next++, ringStages: 2, kernel: 1, sharedBytes: 81 << 10 };
    },
    freePlan: record('freePlan'),
    treeAttention: record('treeAttention'),
    createEvent: handle('createEvent'),
    destroyEvent: record('destroyEvent'),
    recordEvent: record('recordEvent'),
    elapsedMilliseconds: () => 0.01,
    flushL2: record('flushL2'),
    createSlotList: handle('createSlotList'),
    freeSlotList: record('freeSlotList'),
    readOnce: record('readOnce'),
    profileTreeAttention: record('profileTreeAttention'),
    emptyKernel: record('emptyKernel'),
    mmaRate: record('mmaRate'),
    spin: record('spin'),
    gatherRows: record('gatherRows'),
    matmul: record('matmul'),
    rmsNorm: record('rmsNorm'),
    rope: record('rope'),
    elementwise: record('elementwise'),
    softmax: record('softmax'),
    topK: record('topK'),
    copySlots: record('copySlots'),
    fillUniform: record('fillUniform'),
    fillStorageUniform: record('fillStorageUniform'),
  } satisfies CudaAddon;
  return { addon, calls };
}

const SHAPE: AttentionShape = { numHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };

function smallCase(): { plan: TreeAttentionPlan; numPages: number } {
  const { view, numPages } = buildPagedTree(
    [
      { parent: -1, tokens: 40 },
      { parent: 0, tokens: 3 },
      { parent: 0, tokens: 17 },
    ],
    16,
    { seed: 5 },
  );
  return { plan: planTreeAttention(view, defaultQueries(view), { shape: SHAPE }), numPages };
}

/** A fake backend with a small plan prepared; `configure` may replace addon functions first. */
function setup(configure: (addon: CudaAddon, calls: string[]) => void = () => {}) {
  const { addon, calls } = fakeAddon();
  configure(addon, calls);
  const backend = createCudaBackend({ addon });
  const { plan, numPages } = smallCase();
  const storage = backend.createKVStorage({
    numLayers: 2,
    numPages,
    pageSize: 16,
    numKvHeads: 2,
    headDim: 64,
    dtype: 'f16',
  });
  const q = backend.createTensor({ shape: [plan.numQueries, 8, 64], dtype: 'f32' });
  const out = backend.createTensor({ shape: [plan.numQueries, 8, 64], dtype: 'f32' });
  const prepared = backend.preparePlan(plan);
  return { backend, calls, plan, storage, q, out, prepared, numPages };
}

describe.skipIf(!addonBuilt || deviceCount > 0)('createCudaBackend on a machine without a GPU', () => {
  it('throws a BackendError that says no CUDA device or driver is available', () => {
    let caught: unknown;
    try {
      createCudaBackend();
    } catch (error) {
      caught = error;
    }
    expect(BackendError.isInstance(caught)).toBe(true);
    expect((caught as Error).message).toMatch(/no CUDA device or driver is available/);
    expect((caught as Error).message).toMatch(/cudaErrorInsufficientDriver \(35\)|cudaErrorNoDevice \(100\)/);
  });
});

describe('createCudaBackend validation (fake device)', () => {
  it('runs a valid layer with exactly one native launch', () => {
    const { backend, calls, storage, q, out, prepared } = setup();
    calls.length = 0;
    backend.treeAttention({ storage, layer: 1, plan: prepared, q, out, scale: 0.125 });
    expect(calls).toEqual(['treeAttention']);
    expect(prepared.schedule.numUnits).toBeGreaterThan(0);
  });

  it('sends the kernel choice to the addon and reports the kernel it chose', () => {
    const { addon } = fakeAddon();
    const headers: number[] = [];
    const backend = createCudaBackend({
      addon: {
        ...addon,
        preparePlan: (context, header, bytes) => {
          headers.push(header[HEADER_FIELDS.kernel]!);
          return { ...addon.preparePlan(context, header, bytes), kernel: 3 };
        },
      },
    });
    const { plan } = smallCase();
    expect(backend.preparePlan(plan).schedule.kernel).toBe('wgmma');
    backend.preparePlan(plan, { ...SHAPE, headDim: 128 }, { kernel: 'wgmma' });
    backend.preparePlan(plan, SHAPE, { kernel: 'mma' });
    expect(headers).toEqual([0, 3, 1]);
  });

  it('passes scheduler overrides through preparePlan', () => {
    const { addon } = fakeAddon();
    const backend = createCudaBackend({ addon });
    const { view } = buildPagedTree(
      [{ parent: -1, tokens: 4000 }, ...Array.from({ length: 20 }, () => ({ parent: 0, tokens: 400 }))],
      16,
      {
        seed: 2,
      },
    );
    const shape: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };
    const plan = planTreeAttention(view, defaultQueries(view), { shape });
    const few = backend.preparePlan(plan, shape, {
      executor: 'units',
      schedule: { blocksPerMultiprocessor: 1, unitCost: 1000 },
    });
    const many = backend.preparePlan(plan, shape, {
      executor: 'units',
      schedule: { blocksPerMultiprocessor: 8, unitCost: 0 },
    });
    expect(many.schedule.executor).toBe('units');
    expect(many.schedule.numUnits).toBeGreaterThan(few.schedule.numUnits);
    const fewTasks = backend.preparePlan(plan, shape, { tasks: { blocksPerMultiprocessor: 1 } });
    const manyTasks = backend.preparePlan(plan, shape, { tasks: { blocksPerMultiprocessor: 8 } });
    expect(manyTasks.schedule.executor).toBe('tasks');
    expect(manyTasks.schedule.numUnits).toBeGreaterThan(fewTasks.schedule.numUnits);
    const deep = backend.preparePlan(plan, shape, { schedule: { minRingStages: 5, maxResidentTiles: 5 } });
    expect(deep.schedule.ringStages).toBe(2); // the fake addon reports its own ring; the real one honours the hint
  });

  it('rejects bad plans before anything reaches the device', () => {
    const { backend, calls, plan } = setup();
    calls.length = 0;
    const broken = { ...plan, tokenSlots: plan.tokenSlots.map((slot, index) => (index === 0 ? -1 : slot)) };
    expect(() => backend.preparePlan(broken)).toThrow(InvalidArgumentError);
    expect(() => backend.preparePlan({ ...plan, version: 2 } as unknown as TreeAttentionPlan)).toThrow(
      InvalidArgumentError,
    );
    expect(() => backend.preparePlan(plan, { ...SHAPE, numKvHeads: 3 })).toThrow(InvalidArgumentError);
    expect(() => backend.preparePlan(plan, { ...SHAPE, headDim: 512 })).toThrow(InvalidArgumentError);
    expect(() => backend.preparePlan(plan, { ...SHAPE, kvDtype: 'f32' }, { kernel: 'mma' })).toThrow(
      InvalidArgumentError,
    );
    expect(() => backend.preparePlan(plan, { ...SHAPE, kvDtype: 'f32' }, { kernel: 'wgmma' })).toThrow(
      /'wgmma' needs fp16 KV/,
    );
    expect(() => backend.preparePlan(plan, SHAPE, { kernel: 'wgmma' })).toThrow(
      /'wgmma' needs the tasks executor, head dim 128/,
    );
    expect(() =>
      backend.preparePlan(plan, { ...SHAPE, headDim: 128 }, { kernel: 'wgmma', executor: 'units' }),
    ).toThrow(/'wgmma' needs the tasks executor, head dim 128/);
    expect(() =>
      backend.preparePlan(plan, SHAPE, { kernel: 'tensor' as unknown as CudaAttentionKernel }),
    ).toThrow(/must be 'auto', 'mma', 'wgmma' or 'scalar'/);
    expect(calls).toEqual([]);
  });

  it('refuses a KV storage larger than the device with a CapacityError before allocating', () => {
    const { backend, calls } = setup();
    calls.length = 0;
    // 2^20 pages of a Llama-3-8B layer set: 32 layers x 2 x 2^20 x 16 x 8 x 128 x 2 bytes = 2 TiB > 80 GB.
    const descriptor = {
      numLayers: 32,
      numPages: 2 ** 20,
      pageSize: 16,
      numKvHeads: 8,
      headDim: 128,
      dtype: 'f16',
    } as const;
    let caught: unknown;
    try {
      backend.createKVStorage(descriptor);
    } catch (error) {
      caught = error;
    }
    expect(CapacityError.isInstance(caught)).toBe(true);
    expect((caught as Error).message).toMatch(
      /need 2199023255552 bytes, above the device memory of 80000000000 bytes/,
    );
    // More slots than a 32-bit slot index holds: a CapacityError as well, naming the pages that fit.
    expect(() =>
      backend.createKVStorage({ ...descriptor, numLayers: 1, numKvHeads: 1, headDim: 8, numPages: 2 ** 27 }),
    ).toThrow(/2147483648 slots, above the 2\^31 - 1 a 32-bit slot index holds; use at most 134217727 pages/);
    expect(calls).toEqual([]);
  });

  it('rejects mismatched shapes, layers, tensors and scales before launching', () => {
    const { backend, calls, plan, storage, q, out, prepared, numPages } = setup();
    const wrongQ = backend.createTensor({ shape: [plan.numQueries + 1, 8, 64], dtype: 'f32' });
    const halfQ = backend.createTensor({ shape: [plan.numQueries, 8, 64], dtype: 'f16' });
    const otherStorage = backend.createKVStorage({
      numLayers: 1,
      numPages,
      pageSize: 16,
      numKvHeads: 2,
      headDim: 64,
      dtype: 'f32',
    });
    const smallStorage = backend.createKVStorage({
      numLayers: 1,
      numPages: 1,
      pageSize: 16,
      numKvHeads: 2,
      headDim: 64,
      dtype: 'f16',
    });
    calls.length = 0;
    const base = { storage, layer: 0, plan: prepared, q, out, scale: 0.125 };
    expect(() => backend.treeAttention({ ...base, layer: 2 })).toThrow(InvalidArgumentError);
    expect(() => backend.treeAttention({ ...base, q: wrongQ })).toThrow(/must be an f32 tensor of shape/);
    expect(() => backend.treeAttention({ ...base, q: halfQ })).toThrow(InvalidArgumentError);
    expect(() => backend.treeAttention({ ...base, out: q })).toThrow(InvalidArgumentError);
    expect(() => backend.treeAttention({ ...base, storage: otherStorage })).toThrow(
      /must match the plan's shape/,
    );
    expect(() => backend.treeAttention({ ...base, storage: smallStorage })).toThrow(/beyond the storage/);
    expect(() => backend.treeAttention({ ...base, scale: Number.NaN })).toThrow(InvalidArgumentError);
    expect(calls).toEqual([]);
  });

  it('rejects bad KV writes, reads and page copies before touching the device', () => {
    const { backend, calls, storage, numPages } = setup();
    calls.length = 0;
    const row = 2 * 64;
    expect(() =>
      backend.writeKV(
        storage,
        0,
        Int32Array.of(0, 16 * numPages),
        new Float32Array(2 * row),
        new Float32Array(2 * row),
      ),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      backend.writeKV(storage, 0, Int32Array.of(0), new Float32Array(row - 1), new Float32Array(row)),
    ).toThrow(InvalidArgumentError);
    expect(() => backend.copyPages(storage, Int32Array.of(0, 1), Int32Array.of(1, 2))).toThrow(
      /also be a source/,
    );
    expect(() => backend.copyPages(storage, Int32Array.of(0, 1), Int32Array.of(2, 2))).toThrow(
      /repeat a target/,
    );
    expect(calls).toEqual([]);
    backend.writeKV(storage, 0, Int32Array.of(3), new Float32Array(row), new Float32Array(row));
    expect(calls).toEqual(['writeKv']);
  });

  it('profiles a task-executor launch CTA by CTA and refuses the unit executor', () => {
    const { backend, calls, plan, storage, q, out, prepared } = setup((addon, calls) => {
      addon.profileTreeAttention = (_plan, _storage, _layer, _q, _out, _scale, profile) => {
        calls.push('profileTreeAttention');
        for (let block = 0; block < profile.length / 3; block++) {
          profile.set([block % 7, 1000 * block, 1000 * block + 2500], 3 * block);
        }
      };
    });
    expect(prepared.schedule.executor).toBe('tasks');
    calls.length = 0;
    const profile = backend.timing.profileTreeAttention({
      storage,
      layer: 0,
      plan: prepared,
      q,
      out,
      scale: 1,
    });
    expect(calls).toEqual(['profileTreeAttention']);
    const blocks = prepared.schedule.numUnits * 2;
    expect(profile.blocks).toHaveLength(blocks);
    const last = profile.blocks[blocks - 1]!;
    expect(last).toMatchObject({
      task: prepared.schedule.numUnits - 1,
      kvHead: 1,
      multiprocessor: (blocks - 1) % 7,
    });
    expect(last.endMicroseconds - last.startMicroseconds).toBeCloseTo(2.5, 9);
    expect(profile.spanMicroseconds).toBeCloseTo(blocks - 1 + 2.5, 9);
    expect(last.tokens).toBeGreaterThan(0);
    expect(last.rows).toBeGreaterThan(0);
    // The same argument checks as a launch, and nothing reaches the addon on a bad call.
    const units = backend.preparePlan(plan, SHAPE, { executor: 'units' });
    calls.length = 0;
    expect(() =>
      backend.timing.profileTreeAttention({ storage, layer: 0, plan: prepared, q, out: q, scale: 1 }),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      backend.timing.profileTreeAttention({ storage, layer: 0, plan: units, q, out, scale: 1 }),
    ).toThrow(/'tasks' executor/);
    expect(calls).toEqual([]);
  });

  it('disposes idempotently and throws DisposedError afterwards', () => {
    const { backend, calls, storage, q, out, prepared } = setup();
    prepared.dispose();
    prepared.dispose();
    expect(() => backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: 1 })).toThrow(
      DisposedError,
    );
    calls.length = 0;
    backend.dispose();
    backend.dispose();
    expect(calls).toEqual(['destroyContext']);
    expect(backend.disposed).toBe(true);
    expect(storage.disposed).toBe(true);
    expect(q.disposed).toBe(true);
    expect(() => backend.createTensor({ shape: [1], dtype: 'f32' })).toThrow(DisposedError);
  });
});
