import type { DeviceTensor, DType, Shape } from '@deft/core';

/** A dense tensor in device memory, owned by one CUDA backend (see `createCudaBackend`). */
export class CudaTensor implements DeviceTensor {
  readonly backend = 'cuda';
  readonly shape: Shape;
  readonly dtype: DType;
  /** Elements in the tensor. */
  readonly size: number;
  /** @internal The addon's buffer handle. */
  readonly handle: number;
  /** @internal Identifies the owning backend. */
  readonly owner: object;
  #disposed = false;
  readonly #release: (handle: number) => void;

  /** @internal Created by the backend only. */
  constructor(
    owner: object,
    shape: Shape,
    dtype: DType,
    size: number,
    handle: number,
    release: (handle: number) => void,
  ) {
    this.owner = owner;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = size;
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
