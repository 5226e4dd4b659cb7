import type { AttentionShape, TreeAttentionPlan } from '../plan/plan.js';
import type { DType } from '../tensor/dtype.js';
import type { DeviceTensor, TensorDescriptor } from '../tensor/tensor.js';
import type { KVStorage, KVStorageDescriptor } from './kv-storage.js';

/** Version of the {@link Backend} contract. A backend reports the version it implements. */
export const BACKEND_CONTRACT_VERSION = 1 as const;

/** What a backend can do on the device it runs on. */
export interface BackendCapabilities {
  /** KV dtypes the backend can store and attend over. */
  readonly kvDtypes: readonly DType[];
  /** Strategies its tree attention accepts (every backend accepts every plan of these). */
  readonly strategies: readonly TreeAttentionPlan['strategy'][];
  /** A human-readable device description, e.g. `"NVIDIA H100 80GB HBM3"` or `"CPU (reference)"`. */
  readonly device: string;
}

/**
 * A plan uploaded to a backend once per decoding step and reused by every layer.
 * Owns its device buffers: `dispose()` when the step is done (idempotent).
 */
export interface PreparedPlan {
  readonly backend: string;
  readonly plan: TreeAttentionPlan;
  readonly disposed: boolean;
  dispose(): void;
}

/** Arguments of one layer's tree attention. */
export interface TreeAttentionArgs {
  readonly storage: KVStorage;
  /** Layer of `storage` to read, `0 <= layer < numLayers`. */
  readonly layer: number;
  readonly plan: PreparedPlan;
  /** Queries `[numQueries, numHeads, headDim]` f32, row `i` being query `i` of the plan. */
  readonly q: DeviceTensor;
  /** Output `[numQueries, numHeads, headDim]` f32, fully overwritten. */
  readonly out: DeviceTensor;
  /** Softmax scale applied to `q · k` (usually `1 / sqrt(headDim)`). */
  readonly scale: number;
}

/**
 * The contract every compute backend implements (CPU reference, WebGPU, CUDA). The decoder and the
 * model depend on this interface only. Calls enqueue work in order; `synchronize()` and the
 * `download*`/`read*` methods wait for it. Every method validates its arguments before touching any
 * state and throws `InvalidArgumentError` / `BackendError` / `DisposedError`.
 *
 * @example
 * ```ts
 * const storage = backend.createKVStorage({ numLayers: 1, numPages: 64, pageSize: 16, numKvHeads: 8, headDim: 128, dtype: 'f16' });
 * backend.writeKV(storage, 0, slots, k, v);
 * const prepared = backend.preparePlan(plan);
 * backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: 1 / Math.sqrt(128) });
 * const result = await backend.downloadTensor(out);
 * ```
 */
export interface Backend {
  readonly contractVersion: typeof BACKEND_CONTRACT_VERSION;
  /** Short name, e.g. `"cpu"`, `"webgpu"`, `"cuda"`. */
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  readonly disposed: boolean;

  /** Allocates an uninitialised tensor. */
  createTensor(descriptor: TensorDescriptor): DeviceTensor;
  /** Copies `data` (row-major, `shapeSize(shape)` values) into the tensor, converting to its dtype. */
  uploadTensor(tensor: DeviceTensor, data: Float32Array): void;
  /** Reads a tensor back as f32 once all enqueued work is done. */
  downloadTensor(tensor: DeviceTensor): Promise<Float32Array>;

  /** Allocates a paged KV store (contents unspecified until written). */
  createKVStorage(descriptor: KVStorageDescriptor): KVStorage;
  /**
   * Writes K and V of `slots.length` tokens into `layer`: `k` and `v` are `[slots.length, numKvHeads, headDim]`
   * (host f32 arrays or f32 device tensors), converted to the storage's dtype.
   */
  writeKV(
    storage: KVStorage,
    layer: number,
    slots: Int32Array,
    k: Float32Array | DeviceTensor,
    v: Float32Array | DeviceTensor,
  ): void;
  /** Reads K and V of `slots` in `layer` back as f32 `[slots.length, numKvHeads, headDim]`. */
  readKV(storage: KVStorage, layer: number, slots: Int32Array): Promise<{ k: Float32Array; v: Float32Array }>;
  /** Copies whole pages `source[i] -> target[i]` in every layer, K and V (copy-on-write). */
  copyPages(storage: KVStorage, source: Int32Array, target: Int32Array): void;

  /** Validates and uploads a plan for the given attention shape; reuse it for every layer of the step. */
  preparePlan(plan: TreeAttentionPlan, shape?: AttentionShape): PreparedPlan;
  /** One layer of tree attention over a prepared plan; overwrites `out`. */
  treeAttention(args: TreeAttentionArgs): void;

  /** Resolves when all enqueued work has finished. */
  synchronize(): Promise<void>;
  /** Frees everything the backend owns (idempotent). Tensors and storages become unusable. */
  dispose(): void;
}
