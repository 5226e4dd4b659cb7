import type { KVStorage, KVStorageDescriptor } from '@deft/core';
import { BackendError, CapacityError, formatShape } from '@deft/core';

/** `cudaErrorMemoryAllocation`: what `cudaMalloc` returns when the device has too little free memory. */
const CUDA_ERROR_MEMORY_ALLOCATION = 2;

/**
 * Device memory a KV storage may take. `freeBytes` (from `cudaMemGetInfo`) is the limit when known;
 * otherwise `totalBytes` (`CudaDeviceInfo.totalMemory`) is, which catches requests no device state can hold.
 */
export interface CudaMemoryLimit {
  readonly totalBytes: number;
  readonly freeBytes?: number;
}

/**
 * Bytes the addon allocates for a KV storage (one `cudaMalloc`): per layer K then V, each
 * `numPages × pageSize × numKvHeads × headDim` elements of the dtype rounded up to 16 bytes.
 *
 * @example
 * ```ts
 * cudaKVStorageBytes({ numLayers: 32, numPages: 4096, pageSize: 16, numKvHeads: 8, headDim: 128, dtype: 'f16' }); // 8 GiB
 * ```
 */
export function cudaKVStorageBytes(descriptor: KVStorageDescriptor): number {
  const { numLayers, numPages, pageSize, numKvHeads, headDim, dtype } = descriptor;
  const regionBytes = numPages * pageSize * numKvHeads * headDim * (dtype === 'f16' ? 2 : 4);
  return 2 * numLayers * (Math.ceil(regionBytes / 16) * 16);
}

function limitOf(memory: CudaMemoryLimit): { bytes: number; what: string } {
  return memory.freeBytes === undefined
    ? { bytes: memory.totalBytes, what: 'the device memory' }
    : { bytes: memory.freeBytes, what: `the free device memory (of ${memory.totalBytes} bytes in all)` };
}

function describeStorage(descriptor: KVStorageDescriptor, bytes: number): string {
  const { numLayers, numPages, pageSize, numKvHeads, headDim, dtype } = descriptor;
  return `CUDA KV storage: K and V of ${numLayers} layers ${formatShape([numPages, pageSize, numKvHeads, headDim])} ${dtype} need ${bytes} bytes`;
}

function pagesThatFit(descriptor: KVStorageDescriptor, bytes: number): number {
  const { numLayers, pageSize, numKvHeads, headDim, dtype } = descriptor;
  const pageBytes = pageSize * numKvHeads * headDim * (dtype === 'f16' ? 2 : 4);
  return Math.floor((Math.floor(bytes / (2 * numLayers * 16)) * 16) / pageBytes);
}

/**
 * Refuses, before anything is allocated on the device, a KV storage larger than the device memory
 * (`freeBytes` when known, else `totalBytes`).
 *
 * @returns The bytes the storage needs ({@link cudaKVStorageBytes}).
 * @throws {CapacityError} naming the bytes, the limit and the most pages that fit.
 * @example
 * ```ts
 * checkCudaKVStorageSize(descriptor, { totalBytes: backend.deviceInfo.totalMemory });
 * ```
 */
export function checkCudaKVStorageSize(descriptor: KVStorageDescriptor, memory: CudaMemoryLimit): number {
  const bytes = cudaKVStorageBytes(descriptor);
  const limit = limitOf(memory);
  if (bytes > limit.bytes) {
    const fits = pagesThatFit(descriptor, limit.bytes);
    throw new CapacityError(
      `${describeStorage(descriptor, bytes)}, above ${limit.what} of ${limit.bytes} bytes; use at most ${fits} ` +
        'pages of this shape, or free device memory first',
      { argument: 'numPages', expected: `<= ${fits}`, actual: descriptor.numPages },
    );
  }
  return bytes;
}

/**
 * The error `createKVStorage` reports when the addon's `cudaMalloc` fails: a `CapacityError` naming the
 * bytes and the device memory when the device ran out of memory (`cudaErrorMemoryAllocation`, whatever
 * else holds memory on the device), `error` unchanged otherwise.
 *
 * @param error What the addon call threw, converted by `callNative` (a `BackendError` with the CUDA error
 *   number in `actual`).
 * @example
 * ```ts
 * try { handle = callNative('createKVStorage', create); } catch (error) { throw cudaKVStorageError(error, descriptor, memory); }
 * ```
 */
export function cudaKVStorageError(
  error: unknown,
  descriptor: KVStorageDescriptor,
  memory: CudaMemoryLimit,
): unknown {
  if (!BackendError.isInstance(error) || error.actual !== CUDA_ERROR_MEMORY_ALLOCATION) return error;
  const limit = limitOf(memory);
  return new CapacityError(
    `${describeStorage(descriptor, cudaKVStorageBytes(descriptor))}, more than the device could allocate ` +
      `(${limit.what} is ${limit.bytes} bytes, part of it held by other allocations); use fewer pages, or free ` +
      'device memory first',
    { argument: 'numPages', expected: `<= ${limit.bytes} bytes`, actual: descriptor.numPages, cause: error },
  );
}

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
