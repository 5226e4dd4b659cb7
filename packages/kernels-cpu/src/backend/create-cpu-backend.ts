import {
  type AttentionShape,
  BACKEND_CONTRACT_VERSION,
  type BackendCapabilities,
  BackendError,
  type DeviceTensor,
  DisposedError,
  dequantizeBlocks,
  f16ToF32Table,
  f32ToF16Bits,
  formatShape,
  InvalidArgumentError,
  type KVStorage,
  type KVStorageDescriptor,
  type ModelBackend,
  PLAN_STRATEGIES,
  type PreparedPlan,
  shapeSize,
  type TensorDescriptor,
  type TreeAttentionArgs,
  type TreeAttentionPlan,
  validatePlan,
} from '@deft/core';
import {
  checkAttentionShape,
  checkKVStorageDescriptor,
  checkKVValueCount,
  checkLayerIndex,
  checkPageCopy,
  checkSlotIndices,
  checkTensorDescriptor,
  checkUploadData,
} from '@deft/core/backend-kit';
import { assertFinite } from '@deft/core/validate';
import { computePartialStates } from '../attention/compute-partial-states.js';
import { reducePartialStates } from '../attention/reduce-partial-states.js';
import { createCpuModelOps } from '../ops/cpu-model-ops.js';
import { CpuKVStorage, checkKVStorageSize } from './cpu-kv-storage.js';
import { CpuPreparedPlan } from './cpu-prepared-plan.js';
import { CpuTensor } from './cpu-tensor.js';

/** Options of {@link createCpuBackend}. */
export interface CpuBackendOptions {
  /**
   * Throw a `BackendError` (leaving `out` untouched) when tree attention produces a non-finite value,
   * so NaN never passes silently. Default `true`.
   */
  readonly checkFinite?: boolean;
  /**
   * Bytes of KV storage one `createKVStorage` may allocate; larger requests throw a `CapacityError` before
   * allocating. Default: no budget (this package reads nothing of the host; Node callers pass a share of
   * `os.totalmem()`). Requests above the longest typed array are refused either way.
   */
  readonly hostMemoryBudgetBytes?: number;
}

/**
 * The CPU reference backend: a {@link ModelBackend} (tree attention and the model ops) whose tensors and
 * KV storage are host typed arrays.
 */
export type CpuBackend = ModelBackend & { readonly name: 'cpu' };

function invalid(argument: string, message: string, expected: unknown, actual: unknown): never {
  throw new InvalidArgumentError(`${argument} ${message}`, { argument, expected, actual });
}

/**
 * Creates the pure-TypeScript reference backend. Tree attention computes each (chunk, query, head)
 * partial state with float64 accumulation (`lse` in base 2), then merges each query's partials with
 * {@link mergeAttentionStates} over the plan's per-query CSR. f32 KV is stored in `Float32Array`s,
 * f16 KV as binary16 bits in `Uint16Array`s. Work runs synchronously inside each call.
 *
 * @throws Each method throws `InvalidArgumentError` for malformed arguments (before changing anything)
 * and `DisposedError` once the backend (or the tensor, storage or plan passed) is disposed.
 * @example
 * ```ts
 * const backend = createCpuBackend();
 * const storage = backend.createKVStorage({ numLayers: 1, numPages: 8, pageSize: 16, numKvHeads: 2, headDim: 64, dtype: 'f16' });
 * backend.writeKV(storage, 0, slots, k, v);
 * const q = backend.createTensor({ shape: [plan.numQueries, 8, 64], dtype: 'f32' });
 * backend.uploadTensor(q, queries);
 * const out = backend.createTensor({ shape: [plan.numQueries, 8, 64], dtype: 'f32' });
 * backend.treeAttention({ storage, layer: 0, plan: backend.preparePlan(plan), q, out, scale: 1 / 8 });
 * const result = await backend.downloadTensor(out);
 * ```
 */
export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  const checkFinite = options.checkFinite ?? true;
  const hostMemoryBudgetBytes = options.hostMemoryBudgetBytes ?? Number.POSITIVE_INFINITY;
  const owner = {};
  const owned = new Set<{ dispose(): void }>();
  let disposed = false;

  const ensureAlive = (): void => {
    if (disposed) throw new DisposedError('CPU backend');
  };
  const ownTensor = (argument: string, tensor: unknown): CpuTensor => {
    if (!(tensor instanceof CpuTensor) || tensor.owner !== owner) {
      invalid(argument, 'must be a tensor created by this CPU backend', 'CpuTensor', tensor);
    }
    if (tensor.disposed) throw new DisposedError(`${argument} (CPU tensor)`);
    return tensor;
  };
  const ownStorage = (storage: unknown, argument = 'storage'): CpuKVStorage => {
    if (!(storage instanceof CpuKVStorage) || storage.owner !== owner) {
      invalid(argument, 'must be a KV storage created by this CPU backend', 'CpuKVStorage', storage);
    }
    if (storage.disposed) throw new DisposedError(`${argument} (CPU KV storage)`);
    return storage;
  };
  const hostValues = (
    argument: string,
    value: unknown,
    slotCount: number,
    rowValues: number,
  ): Float32Array | Uint16Array => {
    let data: Float32Array | Uint16Array;
    if (value instanceof Float32Array) data = value;
    else if (value instanceof CpuTensor) data = ownTensor(argument, value).data;
    else
      invalid(
        argument,
        'must be a Float32Array or a tensor of this backend',
        'Float32Array | CpuTensor',
        value,
      );
    checkKVValueCount(argument, data.length, slotCount, rowValues);
    return data;
  };
  const track = <T extends { dispose(): void }>(object: T): T => {
    owned.add(object);
    const dispose = object.dispose.bind(object);
    Object.defineProperty(object, 'dispose', {
      value: () => {
        owned.delete(object);
        dispose();
      },
    });
    return object;
  };

  const capabilities: BackendCapabilities = Object.freeze({
    kvDtypes: Object.freeze(['f32', 'f16'] as const),
    strategies: PLAN_STRATEGIES,
    device: 'CPU (reference, float64 accumulation)',
  });

  const backend: CpuBackend = {
    contractVersion: BACKEND_CONTRACT_VERSION,
    name: 'cpu',
    capabilities,
    get disposed() {
      return disposed;
    },

    createTensor(descriptor: TensorDescriptor): DeviceTensor {
      ensureAlive();
      const { shape, dtype } = checkTensorDescriptor(descriptor);
      return track(new CpuTensor(owner, shape, dtype, shapeSize(shape)));
    },

    uploadTensor(tensor: DeviceTensor, data: Float32Array): void {
      ensureAlive();
      const target = ownTensor('tensor', tensor);
      checkUploadData(data, target.shape);
      writeConverted(target.data, 0, data, 0, data.length);
    },

    async downloadTensor(tensor: DeviceTensor): Promise<Float32Array> {
      ensureAlive();
      const own = ownTensor('tensor', tensor);
      const weight = own.weightData;
      // A quantized weight reads back dequantized.
      if (!(weight instanceof Float32Array || weight instanceof Uint16Array)) {
        return dequantizeBlocks(weight.quantization, weight.blocks, shapeSize(own.shape));
      }
      return toFloat32(weight);
    },

    createKVStorage(descriptor: KVStorageDescriptor): KVStorage {
      ensureAlive();
      const checked = checkKVStorageDescriptor(descriptor);
      checkKVStorageSize(checked, hostMemoryBudgetBytes);
      return track(new CpuKVStorage(owner, checked));
    },

    writeKV(
      storage: KVStorage,
      layer: number,
      slots: Int32Array,
      k: Float32Array | DeviceTensor,
      v: Float32Array | DeviceTensor,
    ): void {
      ensureAlive();
      const target = ownStorage(storage);
      checkLayerIndex(layer, target.descriptor.numLayers);
      checkSlotIndices(slots, target.numSlots);
      const rowSize = target.descriptor.numKvHeads * target.descriptor.headDim;
      const keys = hostValues('k', k, slots.length, rowSize);
      const values = hostValues('v', v, slots.length, rowSize);
      const keyStore = target.keys(layer);
      const valueStore = target.values(layer);
      for (let index = 0; index < slots.length; index++) {
        writeConverted(keyStore, slots[index]! * rowSize, keys, index * rowSize, rowSize);
        writeConverted(valueStore, slots[index]! * rowSize, values, index * rowSize, rowSize);
      }
    },

    async readKV(
      storage: KVStorage,
      layer: number,
      slots: Int32Array,
    ): Promise<{ k: Float32Array; v: Float32Array }> {
      ensureAlive();
      const source = ownStorage(storage);
      checkLayerIndex(layer, source.descriptor.numLayers);
      checkSlotIndices(slots, source.numSlots);
      const rowSize = source.descriptor.numKvHeads * source.descriptor.headDim;
      const k = new Float32Array(slots.length * rowSize);
      const v = new Float32Array(slots.length * rowSize);
      for (let index = 0; index < slots.length; index++) {
        writeConverted(k, index * rowSize, source.keys(layer), slots[index]! * rowSize, rowSize);
        writeConverted(v, index * rowSize, source.values(layer), slots[index]! * rowSize, rowSize);
      }
      return { k, v };
    },

    copyPages(storage: KVStorage, source: Int32Array, target: Int32Array): void {
      ensureAlive();
      const kv = ownStorage(storage);
      const { numPages, pageSize, numKvHeads, headDim, numLayers } = kv.descriptor;
      checkPageCopy(source, target, numPages, { distinctTargets: true });
      const pageElements = pageSize * numKvHeads * headDim;
      for (let layer = 0; layer < numLayers; layer++) {
        for (const array of [kv.keys(layer), kv.values(layer)]) {
          // Read every source page before writing, so a page that is both a source and a target is copied as it was.
          const snapshot = Array.from(source, (page) =>
            array.slice(page * pageElements, (page + 1) * pageElements),
          );
          snapshot.forEach((page, index) => {
            array.set(page, target[index]! * pageElements);
          });
        }
      }
    },

    preparePlan(plan: TreeAttentionPlan, shape?: AttentionShape): PreparedPlan {
      ensureAlive();
      validatePlan(plan);
      const checked = shape === undefined ? undefined : checkAttentionShape(shape);
      return track(new CpuPreparedPlan(owner, plan, checked));
    },

    treeAttention(args: TreeAttentionArgs): void {
      ensureAlive();
      if (typeof args !== 'object' || args === null)
        invalid('args', 'must be TreeAttentionArgs', 'object', args);
      const storage = ownStorage(args.storage);
      const layer = checkLayerIndex(args.layer, storage.descriptor.numLayers);
      const prepared = args.plan;
      if (!(prepared instanceof CpuPreparedPlan) || prepared.owner !== owner) {
        invalid(
          'plan',
          'must be a plan prepared by this CPU backend (backend.preparePlan(plan))',
          'CpuPreparedPlan',
          prepared,
        );
      }
      if (prepared.disposed) throw new DisposedError('plan (prepared plan)');
      const plan = prepared.plan;
      const q = ownTensor('q', args.q);
      const out = ownTensor('out', args.out);
      const { numKvHeads, headDim, pageSize } = storage.descriptor;
      for (const [name, tensor] of [
        ['q', q],
        ['out', out],
      ] as const) {
        if (tensor.dtype !== 'f32') invalid(`${name}.dtype`, "must be 'f32'", 'f32', tensor.dtype);
        const [rows, heads, dimension] = tensor.shape;
        if (
          tensor.shape.length !== 3 ||
          rows !== plan.numQueries ||
          dimension !== headDim ||
          heads === undefined ||
          heads % numKvHeads !== 0 ||
          heads < 1
        ) {
          invalid(
            `${name}.shape`,
            `must be [numQueries=${plan.numQueries}, numHeads (a multiple of ${numKvHeads}), headDim=${headDim}]`,
            `[${plan.numQueries}, k * ${numKvHeads}, ${headDim}]`,
            formatShape(tensor.shape),
          );
        }
      }
      const numHeads = q.shape[1]!;
      if (out.shape[1] !== numHeads)
        invalid(
          'out.shape',
          `must equal q.shape ${formatShape(q.shape)}`,
          formatShape(q.shape),
          formatShape(out.shape),
        );
      if (prepared.shape !== undefined) {
        const expected = prepared.shape;
        if (
          expected.numHeads !== numHeads ||
          expected.numKvHeads !== numKvHeads ||
          expected.headDim !== headDim
        ) {
          invalid(
            'plan',
            `was prepared for ${expected.numHeads} heads / ${expected.numKvHeads} KV heads / head dim ${expected.headDim}, not ${numHeads} / ${numKvHeads} / ${headDim}`,
            expected,
            { numHeads, numKvHeads, headDim },
          );
        }
      }
      assertFinite('scale', args.scale);
      validatePlan(plan, { numSlots: storage.numSlots, pageSize, numQueries: plan.numQueries });

      const states = computePartialStates(plan, {
        q: q.data as Float32Array,
        k: storage.keys(layer),
        v: storage.values(layer),
        numHeads,
        numKvHeads,
        headDim,
        scale: args.scale,
      });
      const result = new Float32Array(out.data.length);
      reducePartialStates(plan, states, result);
      if (checkFinite) {
        for (let index = 0; index < result.length; index++) {
          if (!Number.isFinite(result[index]!)) {
            throw new BackendError(
              'cpu',
              `tree attention produced a non-finite value at output element ${index}; check q and the KV written to the pages`,
              {
                argument: 'out',
                actual: result[index],
              },
            );
          }
        }
      }
      (out.data as Float32Array).set(result);
    },

    ops: createCpuModelOps({
      tensorData: (tensor, argument) => {
        ensureAlive();
        return ownTensor(argument, tensor).data;
      },
      weightData: (tensor, argument) => {
        ensureAlive();
        return ownTensor(argument, tensor).weightData;
      },
      wrapQuantizedWeight: (shape, quantization, blocks) => {
        ensureAlive();
        // The tensor keeps the caller's blocks without a copy (the contract hands them over), so a quantized
        // model takes its file's size once, not twice.
        return track(new CpuTensor(owner, shape, 'f32', shape[0] * shape[1], { quantization, blocks }));
      },
      kvLayers: (storage, argument) => {
        ensureAlive();
        return ownStorage(storage, argument);
      },
    }),

    async synchronize(): Promise<void> {
      ensureAlive();
    },

    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const object of [...owned]) object.dispose();
      owned.clear();
    },
  };
  return backend;
}

/** Copies `length` values between f32 arrays and binary16-bit arrays, converting as needed. */
function writeConverted(
  target: Float32Array | Uint16Array,
  targetOffset: number,
  source: Float32Array | Uint16Array,
  sourceOffset: number,
  length: number,
): void {
  const sourceIsHalf = source instanceof Uint16Array;
  const targetIsHalf = target instanceof Uint16Array;
  if (sourceIsHalf === targetIsHalf) {
    target.set(source.subarray(sourceOffset, sourceOffset + length), targetOffset);
  } else if (targetIsHalf) {
    for (let index = 0; index < length; index++)
      target[targetOffset + index] = f32ToF16Bits(source[sourceOffset + index]!);
  } else {
    const table = f16ToF32Table();
    for (let index = 0; index < length; index++)
      target[targetOffset + index] = table[source[sourceOffset + index]!]!;
  }
}

function toFloat32(data: Float32Array | Uint16Array): Float32Array {
  const result = new Float32Array(data.length);
  writeConverted(result, 0, data, 0, data.length);
  return result;
}
