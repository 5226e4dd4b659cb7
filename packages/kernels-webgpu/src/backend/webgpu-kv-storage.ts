/// <reference types="@webgpu/types" />
import type { KVStorage, KVStorageDescriptor } from '@deft/core';
import type { KVFormat } from '../shaders/kv-format.js';

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
