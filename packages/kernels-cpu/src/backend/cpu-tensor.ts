import type { DeviceTensor, DType, Shape } from '@deft/core';
import { DisposedError } from '@deft/core';

/**
 * A tensor of the CPU backend: row-major host memory, `Float32Array` for f32 and binary16 bits in a
 * `Uint16Array` for f16. `data` is the live storage (the backend's "device" memory).
 */
export class CpuTensor implements DeviceTensor {
  readonly backend = 'cpu';
  readonly shape: Shape;
  readonly dtype: DType;
  /** @internal The backend that created the tensor. */
  readonly owner: object;
  #data: Float32Array | Uint16Array | undefined;

  constructor(owner: object, shape: Shape, dtype: DType, size: number) {
    this.owner = owner;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.#data = dtype === 'f16' ? new Uint16Array(size) : new Float32Array(size);
  }

  get disposed(): boolean {
    return this.#data === undefined;
  }

  /** The tensor's memory: `Float32Array` (f32) or binary16 bits (f16). @throws DisposedError after dispose. */
  get data(): Float32Array | Uint16Array {
    if (this.#data === undefined) throw new DisposedError('CPU tensor');
    return this.#data;
  }

  dispose(): void {
    this.#data = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
