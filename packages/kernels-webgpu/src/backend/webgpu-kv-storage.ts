/// <reference types="@webgpu/types" />
import type { KVStorage, KVStorageDescriptor } from '@deft/core';
import { CapacityError, formatShape } from '@deft/core';
import type { KVFormat } from '../shaders/kv-format.js';

/** Most slots (`numPages × pageSize`) a storage may have: plans address slots with 32-bit signed indices. */
export const MAX_KV_SLOTS = 2 ** 31;

/** What bounds one KV storage on a device. */
export interface KVStorageLimits {
  /** `device.limits.maxBufferSize`. */
  readonly maxBufferSize: number;
  /** `device.limits.maxStorageBufferBindingSize`: the attention kernel binds a layer's K (or V) whole. */
  readonly maxStorageBufferBindingSize: number;
  /** Bytes one storage may take in all (K and V of every layer); `Infinity` for no budget. */
  readonly budgetBytes: number;
}

/** The bytes of a KV storage as the backend allocates it. */
export interface KVStorageBytes {
  /** Bytes of one layer's K (or V): `numPages × pageSize × numKvHeads × headDim × bytes(dtype)`. */
  readonly layerBytes: number;
  /** One layer's K (or V) buffer: `layerBytes` rounded up to 16. */
  readonly bufferBytes: number;
  /** K and V of every layer: `2 × numLayers × bufferBytes`. */
  readonly totalBytes: number;
}

const align16 = (bytes: number): number => Math.max(16, Math.ceil(bytes / 16) * 16);

/**
 * Counts the bytes of a KV storage and refuses, before any buffer is created, one whose slots overflow
 * 32-bit indices, whose per-layer buffer exceeds the device's `maxStorageBufferBindingSize` or
 * `maxBufferSize`, or whose K and V exceed `limits.budgetBytes`. Every message names the bytes, the limit
 * and the most pages that would fit.
 *
 * @param descriptor A checked descriptor (integers >= 1, a known dtype).
 * @throws {CapacityError} with `argument` `numPages`.
 * @example
 * ```ts
 * const { bufferBytes } = checkKVStorageSize(descriptor, { ...device.limits, budgetBytes: Infinity });
 * ```
 */
export function checkKVStorageSize(descriptor: KVStorageDescriptor, limits: KVStorageLimits): KVStorageBytes {
  const { numLayers, numPages, pageSize, numKvHeads, headDim, dtype } = descriptor;
  const shape = formatShape([numPages, pageSize, numKvHeads, headDim]);
  const slots = numPages * pageSize;
  if (slots > MAX_KV_SLOTS) {
    const fits = Math.floor(MAX_KV_SLOTS / pageSize);
    throw new CapacityError(
      `WebGPU KV storage ${shape} has ${slots} slots, above the limit of ${MAX_KV_SLOTS} of 32-bit slot ` +
        `indices; use at most ${fits} pages of ${pageSize} tokens`,
      { argument: 'numPages', expected: `<= ${fits}`, actual: numPages },
    );
  }
  const pageBytes = pageSize * numKvHeads * headDim * (dtype === 'f16' ? 2 : 4);
  const layerBytes = numPages * pageBytes;
  const bufferBytes = align16(layerBytes);
  const binding = limits.maxStorageBufferBindingSize <= limits.maxBufferSize;
  const bufferLimit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (bufferBytes > bufferLimit) {
    const fits = Math.floor((Math.floor(bufferLimit / 16) * 16) / pageBytes);
    throw new CapacityError(
      `WebGPU KV storage: one layer of K ${shape} ${dtype} needs a buffer of ${bufferBytes} bytes, above this ` +
        `device's ${binding ? 'maxStorageBufferBindingSize' : 'maxBufferSize'} of ${bufferLimit} bytes; use at ` +
        `most ${fits} pages of this shape, or a device with a larger limit`,
      { argument: 'numPages', expected: `<= ${fits}`, actual: numPages },
    );
  }
  const totalBytes = 2 * numLayers * bufferBytes;
  if (totalBytes > limits.budgetBytes) {
    const fits = Math.floor((Math.floor(limits.budgetBytes / (2 * numLayers * 16)) * 16) / pageBytes);
    throw new CapacityError(
      `WebGPU KV storage: K and V of ${numLayers} layers ${shape} ${dtype} need ${totalBytes} bytes, above the ` +
        `device-memory budget of ${limits.budgetBytes} bytes (deviceMemoryBudgetBytes); use at most ${fits} ` +
        'pages of this shape, or raise the budget',
      { argument: 'numPages', expected: `<= ${fits}`, actual: numPages },
    );
  }
  return { layerBytes, bufferBytes, totalBytes };
}

let nextStorageId = 1;

/**
 * A paged KV store: for each layer, one `GPUBuffer` of K and one of V, each laid out
 * `[numPages, pageSize, numKvHeads, headDim]` (a page is contiguous; slot = `page * pageSize + offset`).
 * f16 storage holds binary16 pairs packed in 32-bit words; f32 storage holds f32.
 */
export class WebGpuKVStorage implements KVStorage {
  readonly backend = 'webgpu';
  readonly id = nextStorageId++;
  private isDisposed = false;

  constructor(
    readonly owner: object,
    readonly descriptor: KVStorageDescriptor,
    /** How the shaders read the elements. */
    readonly format: KVFormat,
    /** `[numLayers]` K buffers. */
    readonly keys: readonly GPUBuffer[],
    /** `[numLayers]` V buffers. */
    readonly values: readonly GPUBuffer[],
    /** Bytes of one layer's K (or V) buffer. */
    readonly layerBytes: number,
    private readonly onDispose: (storage: WebGpuKVStorage) => void,
  ) {}

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Slots of one layer (`numPages × pageSize`). */
  get numSlots(): number {
    return this.descriptor.numPages * this.descriptor.pageSize;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    for (const buffer of this.keys) buffer.destroy();
    for (const buffer of this.values) buffer.destroy();
    this.onDispose(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
