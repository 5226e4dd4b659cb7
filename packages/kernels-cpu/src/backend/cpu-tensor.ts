import type { BlockQuantization, DeviceTensor, DType, Shape } from '@deft/core';
import { DisposedError, InvalidArgumentError } from '@deft/core';

/** The blocks of a quantized CPU weight: `rows` runs of `columns / blockValues` GGUF blocks. */
export interface QuantizedRows {
  readonly quantization: BlockQuantization;
  readonly blocks: Uint8Array;
}

/**
 * A tensor of the CPU backend: row-major host memory, `Float32Array` for f32 and binary16 bits in a
 * `Uint16Array` for f16, or GGUF blocks for a quantized weight. `data` is the live storage (the
 * backend's "device" memory).
 */
export class CpuTensor implements DeviceTensor {
  readonly backend = 'cpu';
  readonly shape: Shape;
  readonly dtype: DType;
  readonly quantization?: BlockQuantization;
  /** @internal The backend that created the tensor. */
  readonly owner: object;
  #data: Float32Array | Uint16Array | Uint8Array | undefined;

  /** An f32 / f16 tensor of `size` values, or (with `blocks`) a quantized weight holding them. */
  constructor(owner: object, shape: Shape, dtype: DType, size: number, quantized?: QuantizedRows) {
    this.owner = owner;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    if (quantized === undefined) {
      this.#data = dtype === 'f16' ? new Uint16Array(size) : new Float32Array(size);
    } else {
      this.quantization = quantized.quantization;
      this.#data = quantized.blocks;
    }
  }

  get disposed(): boolean {
    return this.#data === undefined;
  }

  /**
   * The tensor's memory: `Float32Array` (f32) or binary16 bits (f16).
   * @throws DisposedError after dispose; InvalidArgumentError for a quantized weight (see `weightData`).
   */
  get data(): Float32Array | Uint16Array {
    const data = this.#data;
    if (data === undefined) throw new DisposedError('CPU tensor');
    if (data instanceof Uint8Array) {
      throw new InvalidArgumentError(
        `a ${this.quantization} weight can only be matmul's weight or embedding's table`,
        { argument: 'tensor', expected: 'an f32 or f16 tensor', actual: this.quantization },
      );
    }
    return data;
  }

  /** The memory of a weight: its array, or the blocks of a quantized one. @throws DisposedError after dispose. */
  get weightData(): Float32Array | Uint16Array | QuantizedRows {
    const data = this.#data;
    if (data === undefined) throw new DisposedError('CPU tensor');
    if (data instanceof Uint8Array) return { quantization: this.quantization!, blocks: data };
    return data;
  }

  dispose(): void {
    this.#data = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
