import type { KVStorage, KVStorageDescriptor } from '@deft/core';

/**
 * A paged KV cache in device memory: per layer, K then V, each `[numPages, pageSize, numKvHeads, headDim]`
 * in the storage's dtype (zeroed at creation).
 */
export class CudaKVStorage implements KVStorage {
  readonly backend = 'cuda';
  readonly descriptor: KVStorageDescriptor;
  /** `numPages × pageSize`. */
  readonly numSlots: number;
  /** @internal The addon's storage handle. */
  readonly handle: number;
  /** @internal Identifies the owning backend. */
  readonly owner: object;
  #disposed = false;
  readonly #release: (handle: number) => void;

  /** @internal Created by the backend only. */
  constructor(
    owner: object,
    descriptor: KVStorageDescriptor,
    handle: number,
    release: (handle: number) => void,
  ) {
    this.owner = owner;
    this.descriptor = Object.freeze({ ...descriptor });
    this.numSlots = descriptor.numPages * descriptor.pageSize;
    this.handle = handle;
    this.#release = release;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the device memory (idempotent). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#release(this.handle);
  }
}
