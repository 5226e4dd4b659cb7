/// <reference types="@webgpu/types" />
import {
  type AttentionShape,
  BACKEND_CONTRACT_VERSION,
  type Backend,
  type BackendCapabilities,
  BackendError,
  CapacityError,
  type DeviceTensor,
  DisposedError,
  type DType,
  formatShape,
  fromF16Array,
  InvalidArgumentError,
  type KVStorage,
  type KVStorageDescriptor,
  type ModelOps,
  PLAN_STRATEGIES,
  type PreparedPlan,
  shapeSize,
  type TensorDescriptor,
  type TreeAttentionArgs,
  type TreeAttentionPlan,
  toF16Array,
  UnsupportedError,
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
import { assertFinite, assertInteger, describeValue } from '@deft/core/validate';
import { BUFFER_USAGE, MAP_MODE } from '../device/gpu-flags.js';
import { describeAdapter } from '../device/request-device.js';
import type { OpsResource } from '../ops/model-ops-context.js';
import { createWebGpuModelOps } from '../ops/webgpu-model-ops.js';
import {
  type AttentionKernelConfig,
  attentionKernelLayout,
  chooseAttentionKernelConfig,
} from '../shaders/attention-kernel-config.js';
import { ATTENTION_PARAMS_BYTES, encodeAttentionParams } from '../shaders/attention-params.js';
import { attentionShader } from '../shaders/attention-shader.js';
import type { KVFormat } from '../shaders/kv-format.js';
import {
  copyPagesShader,
  gatherKvShader,
  scatterKvShader,
  TRANSFER_THREADS,
} from '../shaders/kv-transfer-shaders.js';
import { MERGE_THREADS, mergeShader } from '../shaders/merge-shader.js';
import { copyPageBatches } from './copy-page-batches.js';
import { DeviceErrorMonitor } from './device-error-monitor.js';
import { linearDispatchGrid } from './dispatch-grid.js';
import { packPlan } from './plan-buffer-layout.js';
import { checkKVStorageSize, WebGpuKVStorage } from './webgpu-kv-storage.js';
import { WebGpuPreparedPlan } from './webgpu-prepared-plan.js';
import { WebGpuTensor } from './webgpu-tensor.js';

const NAME = 'webgpu';
const LOG2_E = Math.LOG2E;
/** Storage-buffer binding offsets must be multiples of this (the WebGPU default limit). */
const BINDING_ALIGNMENT = 256;
const alignBinding = (bytes: number): number => Math.ceil(bytes / BINDING_ALIGNMENT) * BINDING_ALIGNMENT;
const align16 = (bytes: number): number => Math.max(16, Math.ceil(bytes / 16) * 16);

/** Options of {@link createWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /** The device to run on. The backend never destroys it; create it with `requestWebGpuDevice()` or your own code. */
  readonly device: GPUDevice;
  /** Read f16 KV natively when the device has `shader-f16` (default true); otherwise packed pairs in `u32`. */
  readonly useShaderF16?: boolean;
  /** Use subgroup operations when the device has `subgroups` (default true). */
  readonly useSubgroups?: boolean;
  /**
   * Smallest subgroup size of the device. Default: `device.adapterInfo.subgroupMinSize`, or 4 when the
   * device does not say.
   */
  readonly subgroupMinSize?: number;
  /** Cap on the workgroup memory the attention kernel uses (default: the device limit). */
  readonly maxWorkgroupStorageBytes?: number;
  /**
   * Workgroups to aim for per attention dispatch (default 512): when a plan has fewer (KV head, chunk)
   * units, several workgroups share a unit's row tiles.
   */
  readonly targetWorkgroups?: number;
  /**
   * Bytes of device memory one `createKVStorage` may allocate (K and V of every layer); a larger storage
   * throws a `CapacityError` before any buffer is created. Default: no budget (WebGPU does not report a
   * device's memory; pass what the device can spare). Each layer's buffer is checked against the device's
   * `maxStorageBufferBindingSize` and `maxBufferSize` either way.
   */
  readonly deviceMemoryBudgetBytes?: number;
}

/** What the backend uses of the device it runs on. */
export interface WebGpuFeatures {
  /** f16 KV read with `enable f16` (else packed pairs with `unpack2x16float`). */
  readonly shaderF16: boolean;
  /** Subgroup shuffles in the attention kernel's reductions (else workgroup memory only). */
  readonly subgroups: boolean;
  /** Smallest subgroup size assumed (0 when subgroups are not used). */
  readonly subgroupMinSize: number;
  /** The device can write timestamps into compute passes. */
  readonly timestampQuery: boolean;
  /** Workgroup memory available to the attention kernel. */
  readonly workgroupStorageBytes: number;
  readonly maxStorageBufferBindingSize: number;
}

/** Timestamps written at the start and end of the compute pass of one layer's attention. */
export interface AttentionTimestampWrites {
  readonly querySet: GPUQuerySet;
  readonly beginningOfPassWriteIndex: number;
  readonly endOfPassWriteIndex: number;
}

/**
 * The WebGPU implementation of the DeFT `Backend` contract, with the model ops (so it is a
 * `ModelBackend`) and a few WebGPU-specific extras for batching and profiling.
 */
export interface WebGpuBackend extends Backend {
  readonly device: GPUDevice;
  readonly features: WebGpuFeatures;
  /**
   * The model ops (`ModelOps` of `@deft/core`) in WGSL: tiled matmul, one workgroup per row for
   * RMSNorm and softmax, elementwise kernels; f16 weights are read from packed binary16 pairs.
   * `argmax` and `topK` read the rows back and finish on the host.
   */
  readonly ops: ModelOps;
  /**
   * Encodes one layer's tree attention (the fused attention dispatch and the merge dispatch, in one
   * compute pass) into `encoder` without submitting it, so a whole step's layers can share one command
   * buffer. Validates like {@link Backend.treeAttention}.
   */
  encodeTreeAttention(
    encoder: GPUCommandEncoder,
    args: TreeAttentionArgs,
    timestampWrites?: AttentionTimestampWrites,
  ): void;
  /** The kernel configuration the backend uses for an attention shape (tile sizes, subgroup lanes). */
  attentionKernelConfig(shape: AttentionShape): AttentionKernelConfig;
  /** The buffer behind a tensor of this backend (for interop; do not destroy it). */
  tensorBuffer(tensor: DeviceTensor): GPUBuffer;
}

interface TransferResources {
  readonly buffer: GPUBuffer;
  readonly offsets: { readonly params: number; readonly slots: number; readonly first: number };
}

/**
 * Creates the WebGPU backend on an injected `GPUDevice` (browsers and Node alike).
 *
 * KV storage is paged (`[numPages, pageSize, numKvHeads, headDim]` per layer, K and V in separate
 * buffers); f16 KV is stored as binary16 and read natively with `shader-f16` or as packed `u32` pairs
 * otherwise, always computing in f32. Tree attention runs two dispatches per layer (fused
 * attention over the plan's chunks, then the per-query merge), with pipelines created once per shape
 * and bind groups cached per (plan, storage, layer, q, out).
 *
 * Errors: argument problems throw synchronously (`InvalidArgumentError`, `DisposedError`,
 * `UnsupportedError`, `CapacityError`) before anything is enqueued; WebGPU validation and
 * out-of-memory errors and device loss surface as `BackendError` from `synchronize()` and the reads.
 *
 * @throws InvalidArgumentError if `options.device` is not a GPUDevice.
 * @example
 * ```ts
 * const handle = await requestWebGpuDevice();
 * const backend = createWebGpuBackend({ device: handle.device });
 * const storage = backend.createKVStorage({ numLayers: 32, numPages: 1024, pageSize: 16, numKvHeads: 8, headDim: 128, dtype: 'f16' });
 * const prepared = backend.preparePlan(plan);
 * for (let layer = 0; layer < 32; layer++) backend.treeAttention({ storage, layer, plan: prepared, q, out, scale });
 * await backend.synchronize();
 * ```
 */
export function createWebGpuBackend(options: WebGpuBackendOptions): WebGpuBackend {
  if (typeof options !== 'object' || options === null || typeof options.device?.createBuffer !== 'function') {
    throw new InvalidArgumentError('options.device must be a GPUDevice (see requestWebGpuDevice())', {
      argument: 'options.device',
      expected: 'GPUDevice',
      actual: describeValue(options?.device),
    });
  }
  return new WebGpuBackendImpl(options);
}

class WebGpuBackendImpl implements WebGpuBackend {
  readonly contractVersion = BACKEND_CONTRACT_VERSION;
  readonly name = NAME;
  readonly capabilities: BackendCapabilities;
  readonly device: GPUDevice;
  readonly features: WebGpuFeatures;
  readonly ops: ModelOps;

  private isDisposed = false;
  private readonly monitor: DeviceErrorMonitor;
  private readonly tensors = new Set<WebGpuTensor>();
  private readonly storages = new Set<WebGpuKVStorage>();
  private readonly plans = new Set<WebGpuPreparedPlan>();
  /** What the model ops allocated outside `tensors` (quantized weights), disposed with the backend. */
  private readonly opsResources = new Set<OpsResource>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly maxWorkgroupsPerDimension: number;
  private readonly targetWorkgroups: number;
  private readonly deviceMemoryBudgetBytes: number;

  constructor(options: WebGpuBackendOptions) {
    const device = options.device;
    this.device = device;
    const adapterInfo = (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    const subgroups = (options.useSubgroups ?? true) && device.features.has('subgroups');
    const limits = device.limits;
    this.features = {
      shaderF16: (options.useShaderF16 ?? true) && device.features.has('shader-f16'),
      subgroups,
      subgroupMinSize: subgroups ? (options.subgroupMinSize ?? adapterInfo?.subgroupMinSize ?? 4) : 0,
      timestampQuery: device.features.has('timestamp-query'),
      workgroupStorageBytes: Math.min(
        limits.maxComputeWorkgroupStorageSize,
        options.maxWorkgroupStorageBytes ?? Number.POSITIVE_INFINITY,
      ),
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    };
    this.maxWorkgroupsPerDimension = limits.maxComputeWorkgroupsPerDimension;
    this.targetWorkgroups = options.targetWorkgroups ?? 512;
    this.deviceMemoryBudgetBytes = options.deviceMemoryBudgetBytes ?? Number.POSITIVE_INFINITY;
    if (typeof this.deviceMemoryBudgetBytes !== 'number' || !(this.deviceMemoryBudgetBytes > 0)) {
      throw new InvalidArgumentError('options.deviceMemoryBudgetBytes must be a number of bytes > 0', {
        argument: 'options.deviceMemoryBudgetBytes',
        expected: '> 0',
        actual: options.deviceMemoryBudgetBytes,
      });
    }
    this.capabilities = {
      kvDtypes: ['f32', 'f16'],
      strategies: [...PLAN_STRATEGIES],
      device: describeAdapter(adapterInfo),
    };
    this.monitor = new DeviceErrorMonitor(device, NAME);
    this.ops = createWebGpuModelOps({
      device,
      maxWorkgroupsPerDimension: this.maxWorkgroupsPerDimension,
      assertUsable: () => this.assertUsable(),
      scoped: (what, work) => this.monitor.scoped(what, work),
      pipeline: (key, source) => this.pipeline(key, source),
      tensor: (argument, tensor) => this.ownTensor(argument, tensor),
      storage: (_argument, storage) => this.ownStorage(storage),
      resources: this.opsResources,
      read: (buffer, bytes, what) => this.readBuffer(buffer, 0, bytes, what),
    });
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  // ---------------------------------------------------------------- tensors

  createTensor(descriptor: TensorDescriptor): DeviceTensor {
    this.assertUsable();
    const { shape, dtype } = checkTensorDescriptor(descriptor);
    const size = shapeSize(shape);
    const bytes = align16(size * (dtype === 'f16' ? 2 : 4));
    this.checkBufferSize('tensor', bytes);
    const buffer = this.monitor.scoped('createTensor', () =>
      this.device.createBuffer({
        size: bytes,
        usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST,
        label: `deft tensor ${formatShape(shape)} ${dtype}`,
      }),
    );
    const tensor = new WebGpuTensor(this, [...shape], dtype, size, buffer, (disposed) =>
      this.tensors.delete(disposed),
    );
    this.tensors.add(tensor);
    return tensor;
  }

  uploadTensor(tensor: DeviceTensor, data: Float32Array): void {
    this.assertUsable();
    const target = this.ownTensor('tensor', tensor);
    checkUploadData(data, target.shape);
    const bytes = target.dtype === 'f16' ? padToWords(toF16Array(data)) : data;
    this.monitor.scoped('uploadTensor', () =>
      this.device.queue.writeBuffer(target.buffer, 0, bytes.buffer, bytes.byteOffset, bytes.byteLength),
    );
  }

  async downloadTensor(tensor: DeviceTensor): Promise<Float32Array> {
    this.assertUsable();
    const source = this.ownTensor('tensor', tensor);
    const bytes = align16(source.size * (source.dtype === 'f16' ? 2 : 4));
    const raw = await this.readBuffer(source.buffer, 0, bytes, 'downloadTensor');
    if (source.dtype === 'f16') return fromF16Array(new Uint16Array(raw, 0, source.size));
    return new Float32Array(raw, 0, source.size);
  }

  tensorBuffer(tensor: DeviceTensor): GPUBuffer {
    this.assertUsable();
    return this.ownTensor('tensor', tensor).buffer;
  }

  // ---------------------------------------------------------------- KV storage

  createKVStorage(descriptor: KVStorageDescriptor): KVStorage {
    this.assertUsable();
    const { numLayers, numPages, pageSize, numKvHeads, dtype } = checkKVStorageDescriptor(descriptor);
    const headDim = checkHeadDim('descriptor.headDim', descriptor.headDim);
    const format = this.kvFormat(dtype);
    const frozen: KVStorageDescriptor = Object.freeze({
      numLayers,
      numPages,
      pageSize,
      numKvHeads,
      headDim,
      dtype,
    });
    // Before any buffer exists: slots, each layer's buffer against the device's limits, and the budget.
    const { layerBytes, bufferBytes } = checkKVStorageSize(frozen, {
      maxBufferSize: this.device.limits.maxBufferSize,
      maxStorageBufferBindingSize: this.features.maxStorageBufferBindingSize,
      budgetBytes: this.deviceMemoryBudgetBytes,
    });
    const usage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const { keys, values } = this.monitor.scoped('createKVStorage', () => {
      const keys: GPUBuffer[] = [];
      const values: GPUBuffer[] = [];
      for (let layer = 0; layer < numLayers; layer++) {
        keys.push(this.device.createBuffer({ size: bufferBytes, usage, label: `deft K layer ${layer}` }));
        values.push(this.device.createBuffer({ size: bufferBytes, usage, label: `deft V layer ${layer}` }));
      }
      return { keys, values };
    });
    const storage = new WebGpuKVStorage(this, frozen, format, keys, values, layerBytes, (disposed) =>
      this.storages.delete(disposed),
    );
    this.storages.add(storage);
    return storage;
  }

  writeKV(
    storage: KVStorage,
    layer: number,
    slots: Int32Array,
    k: Float32Array | DeviceTensor,
    v: Float32Array | DeviceTensor,
  ): void {
    this.assertUsable();
    const target = this.ownStorage(storage);
    checkLayerIndex(layer, target.descriptor.numLayers);
    checkSlotIndices(slots, target.numSlots, { distinct: true });
    const rowValues = target.descriptor.numKvHeads * target.descriptor.headDim;
    const count = slots.length;
    const keySource = this.kvSource('k', k, count, rowValues);
    const valueSource = this.kvSource('v', v, count, rowValues);
    if (count === 0) return;
    const unitsPerItem = rowValues / 4;
    const rowBytes = count * rowValues * 4;
    this.monitor.scoped('writeKV', () => {
      const hostBytes =
        (keySource instanceof Float32Array ? alignBinding(rowBytes) : 0) +
        (valueSource instanceof Float32Array ? rowBytes : 0);
      const transfer = this.createTransferBuffer(count, unitsPerItem, slots, hostBytes);
      let hostOffset = transfer.offsets.first;
      const bindSource = (source: Float32Array | WebGpuTensor): GPUBufferBinding => {
        if (source instanceof WebGpuTensor)
          return { buffer: source.buffer, offset: 0, size: align16(rowBytes) };
        const offset = hostOffset;
        this.device.queue.writeBuffer(
          transfer.buffer,
          offset,
          source.buffer,
          source.byteOffset,
          source.byteLength,
        );
        hostOffset += alignBinding(rowBytes);
        return { buffer: transfer.buffer, offset, size: align16(rowBytes) };
      };
      const keyBinding = bindSource(keySource);
      const valueBinding = bindSource(valueSource);
      const pipeline = this.pipeline(`scatter:${target.format}`, () => scatterKvShader(target.format));
      const encoder = this.device.createCommandEncoder({ label: 'deft writeKV' });
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      const grid = linearDispatchGrid(
        Math.ceil((count * unitsPerItem) / TRANSFER_THREADS),
        this.maxWorkgroupsPerDimension,
      );
      for (const [rows, buffer] of [
        [keyBinding, target.keys[layer]!],
        [valueBinding, target.values[layer]!],
      ] as const) {
        this.dispatchTransfer(pass, pipeline, transfer, count, grid, rows, { buffer });
      }
      pass.end();
      this.device.queue.submit([encoder.finish()]);
      transfer.buffer.destroy();
    });
  }

  async readKV(
    storage: KVStorage,
    layer: number,
    slots: Int32Array,
  ): Promise<{ k: Float32Array; v: Float32Array }> {
    this.assertUsable();
    const source = this.ownStorage(storage);
    checkLayerIndex(layer, source.descriptor.numLayers);
    checkSlotIndices(slots, source.numSlots);
    const rowValues = source.descriptor.numKvHeads * source.descriptor.headDim;
    const count = slots.length;
    if (count === 0) return { k: new Float32Array(0), v: new Float32Array(0) };
    const unitsPerItem = rowValues / 4;
    const rowBytes = count * rowValues * 4;
    const valueOffset = alignBinding(rowBytes);
    const total = valueOffset + align16(rowBytes);
    this.checkBufferSize('readKV rows', rowBytes);
    const rows = this.monitor.scoped('readKV', () => {
      const transfer = this.createTransferBuffer(count, unitsPerItem, slots, 0);
      const rows = this.device.createBuffer({
        size: total,
        usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC,
        label: 'deft readKV rows',
      });
      const pipeline = this.pipeline(`gather:${source.format}`, () => gatherKvShader(source.format));
      const encoder = this.device.createCommandEncoder({ label: 'deft readKV' });
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      const grid = linearDispatchGrid(
        Math.ceil((count * unitsPerItem) / TRANSFER_THREADS),
        this.maxWorkgroupsPerDimension,
      );
      for (const [buffer, offset] of [
        [source.keys[layer]!, 0],
        [source.values[layer]!, valueOffset],
      ] as const) {
        this.dispatchTransfer(
          pass,
          pipeline,
          transfer,
          count,
          grid,
          { buffer },
          {
            buffer: rows,
            offset,
            size: align16(rowBytes),
          },
        );
      }
      pass.end();
      this.device.queue.submit([encoder.finish()]);
      transfer.buffer.destroy();
      return rows;
    });
    try {
      const raw = await this.readBuffer(rows, 0, total, 'readKV');
      return {
        k: new Float32Array(raw, 0, count * rowValues).slice(),
        v: new Float32Array(raw, valueOffset, count * rowValues).slice(),
      };
    } finally {
      rows.destroy();
    }
  }

  copyPages(storage: KVStorage, source: Int32Array, target: Int32Array): void {
    this.assertUsable();
    const kv = this.ownStorage(storage);
    const numPages = kv.descriptor.numPages;
    checkPageCopy(source, target, numPages);
    const batches = copyPageBatches(source, target);
    if (batches.length === 0) return;
    const wordsPerPage = kv.layerBytes / numPages / 4;
    this.monitor.scoped('copyPages', () => {
      const pairCount = batches.reduce((sum, batch) => sum + batch.length, 0);
      const paramsBytes = batches.length * BINDING_ALIGNMENT;
      const buffer = this.device.createBuffer({
        size: paramsBytes + alignBinding(pairCount * 8) + batches.length * BINDING_ALIGNMENT,
        usage: BUFFER_USAGE.UNIFORM | BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_DST,
        label: 'deft copyPages',
      });
      const pipeline = this.pipeline('copy-pages', copyPagesShader);
      const encoder = this.device.createCommandEncoder({ label: 'deft copyPages' });
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      let pairOffset = paramsBytes;
      const bound: { params: number; pairs: number; count: number; grid: [number, number] }[] = [];
      batches.forEach((batch, index) => {
        const grid = linearDispatchGrid(
          Math.ceil((batch.length * wordsPerPage) / TRANSFER_THREADS),
          this.maxWorkgroupsPerDimension,
        );
        this.device.queue.writeBuffer(
          buffer,
          index * BINDING_ALIGNMENT,
          Uint32Array.of(batch.length, wordsPerPage, grid[0], 0),
        );
        this.device.queue.writeBuffer(buffer, pairOffset, Uint32Array.from(batch.flat()));
        bound.push({ params: index * BINDING_ALIGNMENT, pairs: pairOffset, count: batch.length, grid });
        pairOffset += alignBinding(batch.length * 8);
      });
      for (let layer = 0; layer < kv.descriptor.numLayers; layer++) {
        for (const layerBuffer of [kv.keys[layer]!, kv.values[layer]!]) {
          for (const batch of bound) {
            pass.setBindGroup(
              0,
              this.device.createBindGroup({
                layout: pipeline.getBindGroupLayout(0),
                entries: [
                  { binding: 0, resource: { buffer, offset: batch.params, size: 16 } },
                  { binding: 1, resource: { buffer, offset: batch.pairs, size: align16(batch.count * 8) } },
                  { binding: 2, resource: { buffer: layerBuffer } },
                ],
              }),
            );
            pass.dispatchWorkgroups(batch.grid[0], batch.grid[1]);
          }
        }
      }
      pass.end();
      this.device.queue.submit([encoder.finish()]);
      buffer.destroy();
    });
  }

  // ---------------------------------------------------------------- attention

  attentionKernelConfig(shape: AttentionShape): AttentionKernelConfig {
    const groupSize = shape.numHeads / shape.numKvHeads;
    const config = chooseAttentionKernelConfig({
      headDim: shape.headDim,
      groupSize,
      kvFormat: this.kvFormat(shape.kvDtype),
      workgroupStorageBytes: this.features.workgroupStorageBytes,
      subgroupMinSize: this.features.subgroupMinSize,
    });
    if (config === undefined) {
      throw new UnsupportedError(
        `headDim ${shape.headDim} does not fit this device's ${this.features.workgroupStorageBytes} bytes of workgroup memory`,
        { argument: 'shape.headDim', expected: 'a smaller head dimension', actual: shape.headDim },
      );
    }
    return config;
  }

  preparePlan(plan: TreeAttentionPlan, shape?: AttentionShape): PreparedPlan {
    this.assertUsable();
    validatePlan(plan);
    const attentionShape = checkWebGpuAttentionShape(
      shape ?? plan.shape,
      shape === undefined ? 'plan.shape' : 'shape',
    );
    this.attentionKernelConfig(attentionShape); // throws early for unsupported shapes
    let maxSlot = -1;
    for (let index = 0; index < plan.tokenSlots.length; index++)
      maxSlot = Math.max(maxSlot, plan.tokenSlots[index]!);
    let maxChunkQueries = 0;
    for (let chunk = 0; chunk < plan.numChunks; chunk++) {
      maxChunkQueries = Math.max(
        maxChunkQueries,
        plan.chunkQueryIndptr[chunk + 1]! - plan.chunkQueryIndptr[chunk]!,
      );
    }
    const { words, layout } = packPlan(plan);
    const statesBytes = plan.numPartials * attentionShape.numHeads * 4;
    const partialOBytes = statesBytes * attentionShape.headDim;
    this.checkBufferSize('the plan', words.byteLength);
    this.checkBufferSize('the partial states (numPartials × numHeads × headDim × 4 bytes)', partialOBytes);
    const prepared = this.monitor.scoped('preparePlan', () => {
      const usage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_DST;
      const planBuffer = this.device.createBuffer({
        size: align16(words.byteLength),
        usage,
        label: 'deft plan',
      });
      this.device.queue.writeBuffer(planBuffer, 0, words);
      const partialO = this.device.createBuffer({
        size: align16(partialOBytes),
        usage: BUFFER_USAGE.STORAGE,
        label: 'deft partial o',
      });
      const partialLse = this.device.createBuffer({
        size: align16(statesBytes),
        usage: BUFFER_USAGE.STORAGE,
        label: 'deft partial lse',
      });
      return new WebGpuPreparedPlan(
        this,
        plan,
        attentionShape,
        layout,
        planBuffer,
        partialO,
        partialLse,
        maxSlot,
        maxChunkQueries,
        (disposed) => this.plans.delete(disposed),
      );
    });
    this.plans.add(prepared);
    return prepared;
  }

  treeAttention(args: TreeAttentionArgs): void {
    this.assertUsable();
    const checked = this.checkAttentionArgs(args);
    this.monitor.scoped('treeAttention', () => {
      const encoder = this.device.createCommandEncoder({ label: 'deft treeAttention' });
      this.encodeChecked(encoder, checked, undefined);
      this.device.queue.submit([encoder.finish()]);
    });
  }

  encodeTreeAttention(
    encoder: GPUCommandEncoder,
    args: TreeAttentionArgs,
    timestampWrites?: AttentionTimestampWrites,
  ): void {
    this.assertUsable();
    const checked = this.checkAttentionArgs(args);
    this.monitor.scoped('encodeTreeAttention', () => this.encodeChecked(encoder, checked, timestampWrites));
  }

  async synchronize(): Promise<void> {
    this.assertUsable();
    await this.device.queue.onSubmittedWorkDone();
    await this.monitor.flush();
  }

  dispose(): void {
    if (this.isDisposed) return;
    for (const plan of [...this.plans]) plan.dispose();
    for (const storage of [...this.storages]) storage.dispose();
    for (const tensor of [...this.tensors]) tensor.dispose();
    for (const resource of [...this.opsResources]) resource.dispose();
    this.pipelines.clear();
    this.monitor.detach();
    this.isDisposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---------------------------------------------------------------- internals

  private encodeChecked(
    encoder: GPUCommandEncoder,
    checked: CheckedAttention,
    timestampWrites: AttentionTimestampWrites | undefined,
  ): void {
    const { storage, layer, prepared, q, out, scale } = checked;
    const { plan, shape } = prepared;
    if (prepared.kernels === undefined) {
      const config = this.attentionKernelConfig(shape);
      const units = plan.numChunks * shape.numKvHeads;
      const rowTiles = Math.ceil(
        (prepared.maxChunkQueries * config.groupSize) / attentionKernelLayout(config).tileRows,
      );
      const rowSplits = Math.max(
        1,
        Math.min(
          rowTiles,
          Math.ceil(this.targetWorkgroups / Math.max(1, units)),
          Math.floor(this.maxWorkgroupsPerDimension / shape.numKvHeads),
        ),
      );
      prepared.kernels = {
        attention: this.pipeline(`attention:${JSON.stringify(config)}`, () => attentionShader(config)),
        merge: this.pipeline(`merge:${shape.headDim}`, () => mergeShader(shape.headDim)),
        rowSplits,
      };
    }
    const { attention, merge, rowSplits } = prepared.kernels;
    const uniform = this.uniformFor(prepared, scale, rowSplits);
    const attentionKey = `${scale}/${storage.id}/${layer}/${q.id}`;
    let attentionGroup = prepared.attentionBindGroups.get(attentionKey);
    if (attentionGroup === undefined) {
      attentionGroup = this.device.createBindGroup({
        label: 'deft attention',
        layout: attention.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform } },
          { binding: 1, resource: { buffer: prepared.planBuffer } },
          { binding: 2, resource: { buffer: storage.keys[layer]! } },
          { binding: 3, resource: { buffer: storage.values[layer]! } },
          { binding: 4, resource: { buffer: q.buffer } },
          { binding: 5, resource: { buffer: prepared.partialO } },
          { binding: 6, resource: { buffer: prepared.partialLse } },
        ],
      });
      prepared.attentionBindGroups.set(attentionKey, attentionGroup);
    }
    const mergeKey = `${scale}/${out.id}`;
    let mergeGroup = prepared.mergeBindGroups.get(mergeKey);
    if (mergeGroup === undefined) {
      mergeGroup = this.device.createBindGroup({
        label: 'deft merge',
        layout: merge.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform } },
          { binding: 1, resource: { buffer: prepared.planBuffer } },
          { binding: 2, resource: { buffer: prepared.partialO } },
          { binding: 3, resource: { buffer: prepared.partialLse } },
          { binding: 4, resource: { buffer: out.buffer } },
        ],
      });
      prepared.mergeBindGroups.set(mergeKey, mergeGroup);
    }
    const pass = encoder.beginComputePass(
      timestampWrites === undefined
        ? { label: 'deft attention' }
        : { label: 'deft attention', timestampWrites },
    );
    if (plan.numChunks > 0) {
      const gridY = Math.min(plan.numChunks, this.maxWorkgroupsPerDimension);
      pass.setPipeline(attention);
      pass.setBindGroup(0, attentionGroup);
      pass.dispatchWorkgroups(shape.numKvHeads * rowSplits, gridY, Math.ceil(plan.numChunks / gridY));
    }
    const mergeGrid = this.mergeGrid(plan.numQueries, shape);
    if (mergeGrid[0] > 0) {
      pass.setPipeline(merge);
      pass.setBindGroup(0, mergeGroup);
      pass.dispatchWorkgroups(mergeGrid[0], mergeGrid[1]);
    }
    pass.end();
  }

  private mergeGrid(numQueries: number, shape: AttentionShape): [number, number] {
    const invocations = numQueries * shape.numHeads * (shape.headDim / 4);
    return linearDispatchGrid(Math.ceil(invocations / MERGE_THREADS), this.maxWorkgroupsPerDimension);
  }

  private uniformFor(prepared: WebGpuPreparedPlan, scale: number, rowSplits: number): GPUBuffer {
    let uniform = prepared.uniforms.get(scale);
    if (uniform !== undefined) return uniform;
    const { plan, shape, layout } = prepared;
    uniform = this.device.createBuffer({
      size: ATTENTION_PARAMS_BYTES,
      usage: BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST,
      label: 'deft attention params',
    });
    this.device.queue.writeBuffer(
      uniform,
      0,
      encodeAttentionParams({
        numHeads: shape.numHeads,
        numKvHeads: shape.numKvHeads,
        numChunks: plan.numChunks,
        numQueries: plan.numQueries,
        chunkGridY: Math.max(1, Math.min(plan.numChunks, this.maxWorkgroupsPerDimension)),
        rowSplits,
        scaleLog2: scale * LOG2_E,
        ...layout,
        mergeGridX: Math.max(1, this.mergeGrid(plan.numQueries, shape)[0]),
      }),
    );
    prepared.uniforms.set(scale, uniform);
    return uniform;
  }

  private pipeline(key: string, source: () => string): GPUComputePipeline {
    let pipeline = this.pipelines.get(key);
    if (pipeline === undefined) {
      const code = source();
      pipeline = this.monitor.scoped(`compiling ${key.split(':')[0]} kernel`, () =>
        this.device.createComputePipeline({
          label: `deft ${key}`,
          layout: 'auto',
          compute: {
            module: this.device.createShaderModule({ code, label: `deft ${key}` }),
            entryPoint: 'main',
          },
        }),
      );
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /**
   * One dispatch of a KV transfer kernel: bindings 0 and 1 are the transfer's parameters and slot list,
   * 2 the rows read and 3 the rows written.
   */
  private dispatchTransfer(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    transfer: TransferResources,
    count: number,
    grid: readonly [number, number],
    input: GPUBindingResource,
    output: GPUBindingResource,
  ): void {
    pass.setBindGroup(
      0,
      this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: transfer.buffer, offset: transfer.offsets.params, size: 16 } },
          {
            binding: 1,
            resource: { buffer: transfer.buffer, offset: transfer.offsets.slots, size: align16(count * 4) },
          },
          { binding: 2, resource: input },
          { binding: 3, resource: output },
        ],
      }),
    );
    pass.dispatchWorkgroups(grid[0], grid[1]);
  }

  private createTransferBuffer(
    count: number,
    unitsPerItem: number,
    slots: Int32Array,
    extraBytes: number,
  ): TransferResources {
    const params = 0;
    const slotsOffset = BINDING_ALIGNMENT;
    const first = slotsOffset + alignBinding(count * 4);
    const buffer = this.device.createBuffer({
      size: first + Math.max(16, extraBytes),
      usage: BUFFER_USAGE.UNIFORM | BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_DST,
      label: 'deft KV transfer',
    });
    const grid = linearDispatchGrid(
      Math.ceil((count * unitsPerItem) / TRANSFER_THREADS),
      this.maxWorkgroupsPerDimension,
    );
    this.device.queue.writeBuffer(
      buffer,
      params,
      Uint32Array.of(count, unitsPerItem, Math.max(1, grid[0]), 0),
    );
    this.device.queue.writeBuffer(
      buffer,
      slotsOffset,
      new Uint32Array(slots.buffer, slots.byteOffset, slots.length).slice(),
    );
    return { buffer, offsets: { params, slots: slotsOffset, first } };
  }

  private async readBuffer(
    source: GPUBuffer,
    offset: number,
    bytes: number,
    what: string,
  ): Promise<ArrayBuffer> {
    const staging = this.monitor.scoped(what, () => {
      const staging = this.device.createBuffer({
        size: bytes,
        usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST,
        label: `deft ${what}`,
      });
      const encoder = this.device.createCommandEncoder({ label: `deft ${what}` });
      encoder.copyBufferToBuffer(source, offset, staging, 0, bytes);
      this.device.queue.submit([encoder.finish()]);
      return staging;
    });
    try {
      try {
        await staging.mapAsync(MAP_MODE.READ);
      } catch (cause) {
        await this.monitor.flush();
        this.monitor.assertAlive();
        throw new BackendError(NAME, `${what}: the read-back could not be mapped (${String(cause)})`, {
          cause,
        });
      }
      await this.monitor.flush();
      return staging.getMappedRange().slice(0);
    } finally {
      staging.destroy();
    }
  }

  private kvFormat(dtype: DType): KVFormat {
    if (dtype === 'f32') return 'f32';
    return this.features.shaderF16 ? 'f16-native' : 'f16-packed';
  }

  private assertUsable(): void {
    if (this.isDisposed) throw new DisposedError('WebGPU backend');
    this.monitor.assertAlive();
  }

  private checkBufferSize(what: string, bytes: number): void {
    const limit = Math.min(this.features.maxStorageBufferBindingSize, this.device.limits.maxBufferSize);
    if (bytes > limit) {
      throw new CapacityError(
        `${what} needs ${bytes} bytes, more than this device binds in one buffer (${limit}); use smaller sizes`,
        {
          argument: what,
          expected: `<= ${limit} bytes`,
          actual: bytes,
        },
      );
    }
  }

  private ownTensor(argument: string, tensor: DeviceTensor): WebGpuTensor {
    if (!(tensor instanceof WebGpuTensor) || tensor.owner !== this) {
      throw new InvalidArgumentError(`${argument} must be a tensor created by this WebGPU backend`, {
        argument,
        expected: 'a tensor from this backend',
        actual: describeValue(tensor),
      });
    }
    if (tensor.disposed) throw new DisposedError(argument);
    return tensor;
  }

  private ownStorage(storage: KVStorage): WebGpuKVStorage {
    if (!(storage instanceof WebGpuKVStorage) || storage.owner !== this) {
      throw new InvalidArgumentError('storage must be a KV storage created by this WebGPU backend', {
        argument: 'storage',
        expected: 'a KVStorage from this backend',
        actual: describeValue(storage),
      });
    }
    if (storage.disposed) throw new DisposedError('storage');
    return storage;
  }

  private kvSource(
    argument: string,
    source: Float32Array | DeviceTensor,
    count: number,
    rowValues: number,
  ): Float32Array | WebGpuTensor {
    const expected = count * rowValues;
    if (source instanceof Float32Array) {
      checkKVValueCount(argument, source.length, count, rowValues);
      return source;
    }
    const tensor = this.ownTensor(argument, source);
    if (tensor.dtype !== 'f32' || tensor.size !== expected) {
      throw new InvalidArgumentError(
        `${argument} must be an f32 tensor of ${expected} values ([${count}, numKvHeads, headDim])`,
        {
          argument,
          expected: `f32 ${expected}`,
          actual: `${tensor.dtype} ${formatShape(tensor.shape)}`,
        },
      );
    }
    return tensor;
  }

  private checkAttentionArgs(args: TreeAttentionArgs): CheckedAttention {
    if (typeof args !== 'object' || args === null) {
      throw new InvalidArgumentError('treeAttention needs { storage, layer, plan, q, out, scale }', {
        argument: 'args',
        actual: args,
      });
    }
    const storage = this.ownStorage(args.storage);
    checkLayerIndex(args.layer, storage.descriptor.numLayers);
    const prepared = args.plan;
    if (!(prepared instanceof WebGpuPreparedPlan) || prepared.owner !== this) {
      throw new InvalidArgumentError('plan must be prepared by this backend (backend.preparePlan(plan))', {
        argument: 'plan',
        actual: describeValue(prepared),
      });
    }
    if (prepared.disposed) throw new DisposedError('plan');
    const { plan, shape } = prepared;
    const descriptor = storage.descriptor;
    if (
      shape.numKvHeads !== descriptor.numKvHeads ||
      shape.headDim !== descriptor.headDim ||
      shape.kvDtype !== descriptor.dtype
    ) {
      throw new InvalidArgumentError(
        `the plan was prepared for numKvHeads ${shape.numKvHeads}, headDim ${shape.headDim}, ${shape.kvDtype} KV but the storage has ${descriptor.numKvHeads}, ${descriptor.headDim}, ${descriptor.dtype}`,
        { argument: 'plan', expected: descriptor, actual: shape },
      );
    }
    if (plan.pageSize !== descriptor.pageSize) {
      throw new InvalidArgumentError(
        `plan.pageSize ${plan.pageSize} differs from the storage's ${descriptor.pageSize}`,
        {
          argument: 'plan.pageSize',
          expected: descriptor.pageSize,
          actual: plan.pageSize,
        },
      );
    }
    if (prepared.maxSlot >= storage.numSlots) {
      throw new InvalidArgumentError(
        `the plan reads slot ${prepared.maxSlot}, outside the storage (${storage.numSlots} slots)`,
        {
          argument: 'plan.tokenSlots',
          expected: `< ${storage.numSlots}`,
          actual: prepared.maxSlot,
        },
      );
    }
    const rows = [plan.numQueries, shape.numHeads, shape.headDim] as const;
    const q = this.ownTensor('q', args.q);
    const out = this.ownTensor('out', args.out);
    checkAttentionTensor('q', q, rows);
    checkAttentionTensor('out', out, rows);
    const scale = assertFinite('scale', args.scale);
    return { storage, layer: args.layer, prepared, q, out, scale };
  }
}

interface CheckedAttention {
  readonly storage: WebGpuKVStorage;
  readonly layer: number;
  readonly prepared: WebGpuPreparedPlan;
  readonly q: WebGpuTensor;
  readonly out: WebGpuTensor;
  readonly scale: number;
}

function padToWords(halves: Uint16Array): Uint16Array {
  if (halves.length % 2 === 0) return halves;
  const padded = new Uint16Array(halves.length + 1);
  padded.set(halves);
  return padded;
}

function checkHeadDim(argument: string, headDim: unknown): number {
  const value = assertInteger(argument, headDim, 4);
  if (value % 4 !== 0 || value > 512) {
    throw new UnsupportedError(
      `the WebGPU kernels need headDim to be a multiple of 4 up to 512, got ${value}`,
      {
        argument,
        expected: 'a multiple of 4, <= 512',
        actual: value,
      },
    );
  }
  return value;
}

function checkWebGpuAttentionShape(shape: AttentionShape, argument: string): AttentionShape {
  const checked = checkAttentionShape(shape, argument);
  checkHeadDim(`${argument}.headDim`, checked.headDim);
  return checked;
}
