import {
  type AttentionShape,
  BACKEND_CONTRACT_VERSION,
  type Backend,
  type BackendCapabilities,
  BackendError,
  CapacityError,
  type DeviceTensor,
  DisposedError,
  InvalidArgumentError,
  type KVStorage,
  type KVStorageDescriptor,
  PLAN_STRATEGIES,
  shapeSize,
  type TensorDescriptor,
  type TreeAttentionArgs,
  type TreeAttentionPlan,
  validatePlan,
} from '@deft/core';
import {
  checkAttentionShape,
  checkAttentionTensor,
  checkKVStorageDescriptor,
  checkKVValueCount,
  checkLayerIndex,
  checkPageCopy,
  checkSlotIndices,
  checkTensorDescriptor,
  checkUploadData,
} from '@deft/core/backend-kit';
import { assertFinite, assertInteger } from '@deft/core/validate';
import { type CudaAddon, type CudaDeviceInfo, loadCudaAddon } from '../native/load-addon.js';
import { callNative } from '../native/native-error.js';
import { buildSchedule, type ScheduleOptions } from '../plan/build-schedule.js';
import { buildTaskSchedule, type TaskScheduleOptions } from '../plan/build-tasks.js';
import {
  type KernelCode,
  type PackedSchedule,
  packSchedule,
  packTaskSchedule,
} from '../plan/pack-schedule.js';
import { type CudaTiming, createCudaTiming } from '../timing/cuda-timing.js';
import { CudaKVStorage, checkCudaKVStorageSize, cudaKVStorageError } from './cuda-kv-storage.js';
import { type CudaModelOps, createCudaModelOps } from './cuda-model-ops.js';
import { CudaPreparedPlan, type CudaScheduleSummary } from './cuda-prepared-plan.js';
import { CudaTensor } from './cuda-tensor.js';

/** The addon handles of one checked attention call. */
interface AttentionCall {
  readonly prepared: CudaPreparedPlan;
  readonly plan: number;
  readonly storage: number;
  readonly layer: number;
  readonly q: number;
  readonly out: number;
  readonly scale: number;
}

/** Options of {@link createCudaBackend}. */
export interface CudaBackendOptions {
  /** CUDA device ordinal (default 0). */
  readonly device?: number;
  /** Path of the addon to load before `DEFT_CUDA_ADDON` and the local build. */
  readonly addonPath?: string;
  /** An already loaded addon (tests inject a fake one). */
  readonly addon?: CudaAddon;
}

/**
 * Which attention kernel a plan runs: `auto` (the fastest the device, KV type, head dim and executor
 * allow: `wgmma` for head dim 128 on compute capability 9.0 with the task executor, else `mma`, else
 * `scalar`), or forced: `mma` (mma.sync tensor cores, sm_80+; fp16 KV, head dim 64 or 128), `wgmma`
 * (Hopper warpgroup MMA: compute capability 9.0, the task executor, fp16 KV, head dim 128), `scalar`
 * (CUDA cores).
 */
export type CudaAttentionKernel = 'auto' | 'mma' | 'wgmma' | 'scalar';

/**
 * How a plan executes: `tasks` (v7, the default: mask-free tasks over groups of tokens with one query
 * set, per-query suffixes in the merge kernel) or `units` (v1-v6: work units over the plan's chunks,
 * masks where the plan has them; keeps the paper's strategies distinct for the ablation).
 */
export type CudaExecutor = 'tasks' | 'units';

/** Options of {@link CudaBackend.preparePlan} beyond the Backend contract. */
export interface CudaPlanOptions {
  /** Default `auto` (see {@link CudaAttentionKernel}). */
  readonly kernel?: CudaAttentionKernel;
  /** Default {@link DEFAULT_CUDA_EXECUTOR}. */
  readonly executor?: CudaExecutor;
  /** Overrides of the task scheduler's cost model (see `TaskScheduleOptions`). */
  readonly tasks?: Partial<
    Pick<
      TaskScheduleOptions,
      'blocksPerMultiprocessor' | 'queryTileCost' | 'taskCost' | 'suffixTokens' | 'suffixRows'
    >
  >;
  /** Overrides of the scheduler's cost model (see `ScheduleOptions`). */
  readonly schedule?: Partial<
    Pick<
      ScheduleOptions,
      | 'blocksPerMultiprocessor'
      | 'queryTileCost'
      | 'partialCost'
      | 'unitCost'
      | 'maxResidentTiles'
      | 'minRingStages'
      | 'fusedMergeLimit'
    >
  >;
}

/** The CUDA backend: the Backend contract with the model ops, plus device facts and measurement helpers. */
export interface CudaBackend extends Backend {
  readonly name: 'cuda';
  readonly deviceInfo: CudaDeviceInfo;
  /** The model ops ({@link CudaModelOps}): a CUDA backend is a `ModelBackend`. */
  readonly ops: CudaModelOps;
  /** Events, L2 flush, read-once floor, copy bandwidth (benchmarks). */
  readonly timing: CudaTiming;
  createTensor(descriptor: TensorDescriptor): CudaTensor;
  createKVStorage(descriptor: KVStorageDescriptor): CudaKVStorage;
  preparePlan(plan: TreeAttentionPlan, shape?: AttentionShape, options?: CudaPlanOptions): CudaPreparedPlan;
}

const KERNEL_CODES: Readonly<Record<CudaAttentionKernel, KernelCode>> = {
  auto: 0,
  mma: 1,
  scalar: 2,
  wgmma: 3,
};
/** The kernel a prepared plan runs, by the code the addon reports. */
const KERNEL_NAMES: Readonly<Record<number, CudaScheduleSummary['kernel']>> = {
  1: 'mma',
  2: 'scalar',
  3: 'wgmma',
};

/** The executor a plan uses when {@link CudaPlanOptions.executor} is not given. */
export const DEFAULT_CUDA_EXECUTOR: CudaExecutor = 'tasks';

function invalid(argument: string, message: string, expected: unknown, actual: unknown): never {
  throw new InvalidArgumentError(`${argument} ${message}`, { argument, expected, actual });
}

function checkShape(shape: unknown): AttentionShape {
  const candidate = checkAttentionShape(shape);
  if (candidate.headDim > 256) {
    invalid('shape.headDim', 'must be at most 256 on the CUDA backend', '<= 256', candidate.headDim);
  }
  return candidate;
}

/**
 * Creates the CUDA backend on one device: tensors and paged KV storage (f32 or fp16) in device memory,
 * plans uploaded once per step with their execution schedule, and tree attention as one kernel launch
 * per layer (tensor cores for fp16 KV, with the partial-state merge fused into the same launch). Work
 * is enqueued on the backend's own stream; downloads and `synchronize()` wait for it.
 *
 * @throws BackendError when the addon cannot be loaded (it lists what was tried and how to build it),
 * or when no CUDA device or driver is usable (e.g. `cudaErrorInsufficientDriver` on a machine without a GPU).
 * Methods throw `InvalidArgumentError` before any device work for malformed arguments, and
 * `DisposedError` once the backend (or the object passed) is disposed.
 * @example
 * ```ts
 * const backend = createCudaBackend();
 * const storage = backend.createKVStorage({ numLayers: 32, numPages: 4096, pageSize: 16, numKvHeads: 8, headDim: 128, dtype: 'f16' });
 * backend.writeKV(storage, 0, slots, k, v);
 * const prepared = backend.preparePlan(plan);
 * backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: 1 / Math.sqrt(128) });
 * const result = await backend.downloadTensor(out);
 * backend.dispose();
 * ```
 */
export function createCudaBackend(options: CudaBackendOptions = {}): CudaBackend {
  const addon = options.addon ?? loadCudaAddon(options.addonPath);
  const ordinal = options.device ?? 0;
  assertInteger('options.device', ordinal, 0);
  const probe = addon.probe();
  if (probe.deviceCount === 0) {
    throw new BackendError(
      'cuda',
      `no CUDA device or driver is available: ${probe.errorName || 'no device'} (${probe.error})` +
        `${probe.errorMessage ? `: ${probe.errorMessage}` : ''}. ` +
        'Run on a machine with an NVIDIA GPU and a driver for CUDA 13 or newer, or use the cpu or webgpu backend.',
      { argument: 'device', expected: 'a CUDA device', actual: probe },
    );
  }
  const context = callNative('createContext', () => addon.createContext(ordinal));
  const deviceInfo = callNative('deviceInfo', () => addon.deviceInfo(context));
  const owner = {};
  const owned = new Set<{ dispose(): void }>();
  let disposed = false;

  const alive = (): void => {
    if (disposed) throw new DisposedError('CUDA backend');
  };
  const track = <T extends { dispose(): void }>(object: T): T => {
    owned.add(object);
    return object;
  };
  const releaser =
    (free: (handle: number) => void, object: () => { dispose(): void }) =>
    (handle: number): void => {
      owned.delete(object());
      if (!disposed) free(handle);
    };
  const ownTensor = (argument: string, tensor: unknown): CudaTensor => {
    if (!(tensor instanceof CudaTensor) || tensor.owner !== owner) {
      invalid(argument, 'must be a tensor created by this CUDA backend', 'CudaTensor', tensor);
    }
    if (tensor.disposed) throw new DisposedError(`${argument} (CUDA tensor)`);
    return tensor;
  };
  const ownStorage = (storage: unknown): CudaKVStorage => {
    if (!(storage instanceof CudaKVStorage) || storage.owner !== owner) {
      invalid('storage', 'must be a KV storage created by this CUDA backend', 'CudaKVStorage', storage);
    }
    if (storage.disposed) throw new DisposedError('storage (CUDA KV storage)');
    return storage;
  };
  /** A writeKV source: a host f32 array, or a device tensor of this backend. */
  const kvSource = (
    argument: string,
    value: unknown,
    slotCount: number,
    rowValues: number,
  ): { data: Float32Array | number; dtype: 0 | 1 } => {
    if (value instanceof Float32Array) {
      checkKVValueCount(argument, value.length, slotCount, rowValues);
      return { data: value, dtype: 0 };
    }
    if (value instanceof CudaTensor) {
      const tensor = ownTensor(argument, value);
      checkKVValueCount(argument, tensor.size, slotCount, rowValues);
      return { data: tensor.handle, dtype: tensor.dtype === 'f16' ? 1 : 0 };
    }
    return invalid(
      argument,
      'must be a Float32Array or a tensor of this backend',
      'Float32Array | CudaTensor',
      value,
    );
  };

  const capabilities: BackendCapabilities = Object.freeze({
    kvDtypes: Object.freeze(['f32', 'f16'] as const),
    strategies: PLAN_STRATEGIES,
    device: `${deviceInfo.name} (CUDA, sm_${deviceInfo.computeCapability.replace('.', '')}, ${deviceInfo.multiprocessors} SMs)`,
  });

  /** Checks one layer's attention arguments; returns the addon handles of the call. */
  const checkAttention = (args: TreeAttentionArgs): AttentionCall => {
    alive();
    if (typeof args !== 'object' || args === null)
      invalid('args', 'must be TreeAttentionArgs', 'object', args);
    const storage = ownStorage(args.storage);
    const layer = checkLayerIndex(args.layer, storage.descriptor.numLayers);
    const prepared = args.plan;
    if (!(prepared instanceof CudaPreparedPlan) || prepared.owner !== owner) {
      invalid('plan', 'must be a plan prepared by this CUDA backend', 'CudaPreparedPlan', prepared);
    }
    if (prepared.disposed) throw new DisposedError('plan (CUDA prepared plan)');
    const { shape, plan } = prepared;
    const descriptor = storage.descriptor;
    if (
      descriptor.numKvHeads !== shape.numKvHeads ||
      descriptor.headDim !== shape.headDim ||
      descriptor.dtype !== shape.kvDtype ||
      descriptor.pageSize !== plan.pageSize
    ) {
      invalid(
        'storage',
        `must match the plan's shape (${shape.numKvHeads} KV heads, head dim ${shape.headDim}, ${shape.kvDtype}, page size ${plan.pageSize})`,
        shape,
        descriptor,
      );
    }
    if (prepared.maxSlot >= storage.numSlots) {
      invalid(
        'plan',
        `reads slot ${prepared.maxSlot}, beyond the storage's ${storage.numSlots} slots`,
        `< ${storage.numSlots}`,
        prepared.maxSlot,
      );
    }
    const q = ownTensor('q', args.q);
    const out = ownTensor('out', args.out);
    const rows = [plan.numQueries, shape.numHeads, shape.headDim] as const;
    checkAttentionTensor('q', q, rows);
    checkAttentionTensor('out', out, rows);
    if (q === out) invalid('out', 'must not be the q tensor', 'a distinct tensor', out);
    assertFinite('scale', args.scale);
    return {
      prepared,
      plan: prepared.handle,
      storage: storage.handle,
      layer,
      q: q.handle,
      out: out.handle,
      scale: args.scale,
    };
  };

  const backend: CudaBackend = {
    contractVersion: BACKEND_CONTRACT_VERSION,
    name: 'cuda',
    capabilities,
    deviceInfo,
    timing: createCudaTiming(
      addon,
      context,
      deviceInfo.multiprocessors,
      alive,
      (storage) => ownStorage(storage).handle,
      (args) => {
        const call = checkAttention(args);
        if (call.prepared.schedule.executor !== 'tasks') {
          invalid(
            'plan',
            "must use the 'tasks' executor to be profiled",
            'tasks',
            call.prepared.schedule.executor,
          );
        }
        const profile = new Float64Array(
          3 * call.prepared.schedule.numUnits * call.prepared.shape.numKvHeads,
        );
        callNative('profileTreeAttention', () =>
          addon.profileTreeAttention(
            call.plan,
            call.storage,
            call.layer,
            call.q,
            call.out,
            call.scale,
            profile,
          ),
        );
        return { prepared: call.prepared, profile };
      },
    ),
    ops: createCudaModelOps({
      addon,
      tensor: (argument, tensor) => {
        alive();
        return ownTensor(argument, tensor);
      },
      storage: (storage) => {
        alive();
        return ownStorage(storage);
      },
    }),
    get disposed() {
      return disposed;
    },

    createTensor(descriptor: TensorDescriptor): CudaTensor {
      alive();
      const { shape, dtype } = checkTensorDescriptor(descriptor);
      const size = shapeSize(shape);
      const bytes = size * (dtype === 'f16' ? 2 : 4);
      const handle = callNative('createTensor', () => addon.allocate(context, bytes));
      let tensor: CudaTensor | undefined;
      tensor = new CudaTensor(
        owner,
        shape,
        dtype,
        size,
        handle,
        releaser(
          (h) => addon.freeBuffer(h),
          () => tensor!,
        ),
      );
      return track(tensor);
    },

    uploadTensor(tensor: DeviceTensor, data: Float32Array): void {
      alive();
      const target = ownTensor('tensor', tensor);
      checkUploadData(data, target.shape);
      if (target.dtype === 'f16')
        callNative('uploadTensor', () => addon.uploadF32AsF16(target.handle, 0, data));
      else callNative('uploadTensor', () => addon.upload(target.handle, 0, data));
    },

    async downloadTensor(tensor: DeviceTensor): Promise<Float32Array> {
      alive();
      const source = ownTensor('tensor', tensor);
      const result = new Float32Array(source.size);
      if (source.dtype === 'f16')
        callNative('downloadTensor', () => addon.downloadF16AsF32(source.handle, 0, result));
      else callNative('downloadTensor', () => addon.download(source.handle, 0, result));
      return result;
    },

    createKVStorage(descriptor: KVStorageDescriptor): CudaKVStorage {
      alive();
      checkKVStorageDescriptor(descriptor);
      if (descriptor.numPages * descriptor.pageSize > 0x7fffffff) {
        const fits = Math.floor(0x7fffffff / descriptor.pageSize);
        throw new CapacityError(
          `CUDA KV storage: ${descriptor.numPages} pages x ${descriptor.pageSize} tokens = ` +
            `${descriptor.numPages * descriptor.pageSize} slots, above the 2^31 - 1 a 32-bit slot index holds; ` +
            `use at most ${fits} pages of this size`,
          { argument: 'numPages', expected: `<= ${fits}`, actual: descriptor.numPages },
        );
      }
      const { numLayers, numPages, pageSize, numKvHeads, headDim, dtype } = descriptor;
      // Refused before the device is touched when it cannot fit the device at all; a cudaMalloc that
      // fails for want of free memory becomes the same CapacityError.
      const memory = { totalBytes: deviceInfo.totalMemory };
      checkCudaKVStorageSize(descriptor, memory);
      let handle: number;
      try {
        handle = callNative('createKVStorage', () =>
          addon.createStorage(
            context,
            numLayers,
            numPages,
            pageSize,
            numKvHeads,
            headDim,
            dtype === 'f16' ? 1 : 0,
          ),
        );
      } catch (error) {
        throw cudaKVStorageError(error, descriptor, memory);
      }
      let storage: CudaKVStorage | undefined;
      storage = new CudaKVStorage(
        owner,
        descriptor,
        handle,
        releaser(
          (h) => addon.freeStorage(h),
          () => storage!,
        ),
      );
      return track(storage);
    },

    writeKV(
      storage: KVStorage,
      layer: number,
      slots: Int32Array,
      k: Float32Array | DeviceTensor,
      v: Float32Array | DeviceTensor,
    ): void {
      alive();
      const target = ownStorage(storage);
      checkLayerIndex(layer, target.descriptor.numLayers);
      checkSlotIndices(slots, target.numSlots);
      const rowValues = target.descriptor.numKvHeads * target.descriptor.headDim;
      const keys = kvSource('k', k, slots.length, rowValues);
      const values = kvSource('v', v, slots.length, rowValues);
      if (typeof keys.data !== typeof values.data || keys.dtype !== values.dtype) {
        invalid(
          'v',
          'must be the same kind of source as k (host arrays, or device tensors of one dtype)',
          'same as k',
          v,
        );
      }
      callNative('writeKV', () =>
        addon.writeKv(target.handle, layer, slots, keys.data, values.data, keys.dtype),
      );
    },

    async readKV(
      storage: KVStorage,
      layer: number,
      slots: Int32Array,
    ): Promise<{ k: Float32Array; v: Float32Array }> {
      alive();
      const source = ownStorage(storage);
      checkLayerIndex(layer, source.descriptor.numLayers);
      checkSlotIndices(slots, source.numSlots);
      const length = slots.length * source.descriptor.numKvHeads * source.descriptor.headDim;
      const k = new Float32Array(length);
      const v = new Float32Array(length);
      callNative('readKV', () => addon.readKv(source.handle, layer, slots, k, v));
      return { k, v };
    },

    copyPages(storage: KVStorage, source: Int32Array, target: Int32Array): void {
      alive();
      const kv = ownStorage(storage);
      const { numPages } = kv.descriptor;
      checkPageCopy(source, target, numPages, { distinctTargets: true, disjoint: true });
      callNative('copyPages', () => addon.copyPages(kv.handle, source, target));
    },

    preparePlan(
      plan: TreeAttentionPlan,
      shape?: AttentionShape,
      planOptions: CudaPlanOptions = {},
    ): CudaPreparedPlan {
      alive();
      validatePlan(plan);
      const resolved = checkShape(shape ?? plan.shape);
      const kernel = planOptions.kernel ?? 'auto';
      if (!Object.hasOwn(KERNEL_CODES, kernel))
        invalid(
          'options.kernel',
          "must be 'auto', 'mma', 'wgmma' or 'scalar'",
          'auto | mma | wgmma | scalar',
          kernel,
        );
      if (
        (kernel === 'mma' || kernel === 'wgmma') &&
        (resolved.kvDtype !== 'f16' || (resolved.headDim !== 64 && resolved.headDim !== 128))
      ) {
        invalid(
          'options.kernel',
          `'${kernel}' needs fp16 KV and head dim ${kernel === 'wgmma' ? '128' : '64 or 128'}`,
          'auto | scalar',
          kernel,
        );
      }
      const executor = planOptions.executor ?? DEFAULT_CUDA_EXECUTOR;
      if (executor !== 'tasks' && executor !== 'units')
        invalid('options.executor', "must be 'tasks' or 'units'", 'tasks | units', executor);
      if (
        kernel === 'wgmma' &&
        (executor !== 'tasks' || deviceInfo.computeCapability !== '9.0' || resolved.headDim !== 128)
      ) {
        invalid(
          'options.kernel',
          `'wgmma' needs the tasks executor, head dim 128 and a compute capability 9.0 device (this plan: ${executor}, head dim ${resolved.headDim}, compute capability ${deviceInfo.computeCapability})`,
          'auto | mma | scalar',
          kernel,
        );
      }
      let summaryFields: Omit<CudaScheduleSummary, 'kernel' | 'ringStages' | 'sharedBytes'>;
      let packed: PackedSchedule;
      let maxSlot: number;
      let taskFields: Int32Array | undefined;
      if (executor === 'tasks') {
        const tasks = buildTaskSchedule(plan, {
          numHeads: resolved.numHeads,
          numKvHeads: resolved.numKvHeads,
          multiprocessors: deviceInfo.multiprocessors,
          ...planOptions.tasks,
        });
        packed = packTaskSchedule(plan, resolved, tasks, KERNEL_CODES[kernel]);
        maxSlot = tasks.maxSlot;
        taskFields = tasks.tasks;
        const mergedQueries = countMergedQueries(tasks.queryPartialIndptr, plan.numQueries);
        summaryFields = {
          executor,
          numExecChunks: tasks.numGroups,
          numUnits: tasks.numTasks,
          numExecPartials: tasks.numPartials,
          mergedQueries,
          suffixTokens: tasks.suffixSlots.length,
          fusedMerge: false,
        };
      } else {
        const schedule = buildSchedule(plan, {
          numHeads: resolved.numHeads,
          numKvHeads: resolved.numKvHeads,
          multiprocessors: deviceInfo.multiprocessors,
          ...planOptions.schedule,
        });
        packed = packSchedule(plan, resolved, schedule, KERNEL_CODES[kernel]);
        maxSlot = schedule.maxSlot;
        const mergedQueries = countMergedQueries(schedule.queryPartialIndptr, plan.numQueries);
        summaryFields = {
          executor,
          numExecChunks: schedule.numExecChunks,
          numUnits: schedule.numUnits,
          numExecPartials: schedule.numExecPartials,
          mergedQueries,
          suffixTokens: 0,
          fusedMerge: schedule.fuseMerge,
        };
      }
      const summary = callNative('preparePlan', () =>
        addon.preparePlan(context, packed.header, packed.bytes),
      );
      let prepared: CudaPreparedPlan | undefined;
      prepared = new CudaPreparedPlan(
        owner,
        plan,
        resolved,
        Object.freeze({
          ...summaryFields,
          kernel: KERNEL_NAMES[summary.kernel] ?? 'scalar',
          ringStages: summary.ringStages,
          sharedBytes: summary.sharedBytes,
        }),
        maxSlot,
        summary.handle,
        releaser(
          (h) => addon.freePlan(h),
          () => prepared!,
        ),
        taskFields,
      );
      return track(prepared);
    },

    treeAttention(args: TreeAttentionArgs): void {
      const call = checkAttention(args);
      callNative('treeAttention', () =>
        addon.treeAttention(call.plan, call.storage, call.layer, call.q, call.out, call.scale),
      );
    },

    async synchronize(): Promise<void> {
      alive();
      callNative('synchronize', () => addon.synchronize(context));
    },

    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const object of [...owned]) object.dispose();
      owned.clear();
      addon.destroyContext(context);
    },
  };
  return backend;
}

/** Queries whose output merges more than one partial state (CSR `indptr` over the queries). */
function countMergedQueries(indptr: Int32Array, numQueries: number): number {
  let merged = 0;
  for (let query = 0; query < numQueries; query++) if (indptr[query + 1]! - indptr[query]! > 1) merged++;
  return merged;
}
