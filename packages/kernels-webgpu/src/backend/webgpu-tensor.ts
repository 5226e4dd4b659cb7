/// <reference types="@webgpu/types" />
import type { DeviceTensor, DType, Shape } from '@deft/core';

let nextTensorId = 1;

/**
 * A dense row-major tensor in one `GPUBuffer`. f32 elements are stored as f32; f16 elements as packed
 * binary16 pairs (element `2i` in the low half of word `i`). The buffer is padded to 16 bytes.
 */
export class WebGpuTensor implements DeviceTensor {
  readonly backend = 'webgpu';
  /** Unique per process, used to key cached bind groups. */
  readonly id = nextTensorId++;
  private isDisposed = false;

  constructor(
    /** The backend instance that created it. */
    readonly owner: object,
    readonly shape: Shape,
    readonly dtype: DType,
    /** Number of elements. */
    readonly size: number,
    readonly buffer: GPUBuffer,
    private readonly onDispose: (tensor: WebGpuTensor) => void,
  ) {}

  get disposed(): boolean {
    return this.isDisposed;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.buffer.destroy();
    this.onDispose(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
