/// <reference types="@webgpu/types" />
import type { DeviceTensor, DType, Shape } from '@deft/core';
import { WebGpuBufferResource } from './webgpu-buffer-resource.js';

let nextTensorId = 1;

/**
 * A dense row-major tensor in one `GPUBuffer`. f32 elements are stored as f32; f16 elements as packed
 * binary16 pairs (element `2i` in the low half of word `i`). The buffer is padded to 16 bytes.
 */
export class WebGpuTensor extends WebGpuBufferResource implements DeviceTensor {
  /** Unique per process, used to key cached bind groups. */
  readonly id = nextTensorId++;

  constructor(
    /** The backend instance that created it. */
    owner: object,
    shape: Shape,
    readonly dtype: DType,
    /** Number of elements. */
    readonly size: number,
    buffer: GPUBuffer,
    onDispose: (tensor: WebGpuTensor) => void,
  ) {
    super(owner, shape, buffer, () => onDispose(this));
  }
}
