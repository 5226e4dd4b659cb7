import type { DType } from '../tensor/dtype.js';

/**
 * Shape of a paged KV store. Per layer, K and V are each laid out
 * `[numPages, pageSize, numKvHeads, headDim]`; a page is contiguous, and a slot is
 * `page * pageSize + offsetInPage`.
 */
export interface KVStorageDescriptor {
  readonly numLayers: number;
  readonly numPages: number;
  /** Tokens per page (16 by default in `@deft/kv-cache`; 1 allowed). */
  readonly pageSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly dtype: DType;
}

/**
 * The bytes of a paged KV cache, owned by a backend (typed arrays, `GPUBuffer`s, device memory).
 * Which pages are in use is the business of `@deft/kv-cache`; a storage only holds the bytes.
 * `dispose()` is idempotent; use after dispose throws `DisposedError`.
 */
export interface KVStorage {
  /** Name of the backend that owns the storage. */
  readonly backend: string;
  readonly descriptor: KVStorageDescriptor;
  readonly disposed: boolean;
  dispose(): void;
}

/** Bytes of K and V for one token in one layer: `2 × numKvHeads × headDim × bytes(dtype)`. */
export function kvBytesPerToken(shape: { numKvHeads: number; headDim: number; dtype: DType }): number {
  return 2 * shape.numKvHeads * shape.headDim * (shape.dtype === 'f16' ? 2 : 4);
}
