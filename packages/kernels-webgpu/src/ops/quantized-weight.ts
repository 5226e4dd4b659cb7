/// <reference types="@webgpu/types" />
import {
  type BlockQuantization,
  CapacityError,
  type DeviceTensor,
  DisposedError,
  type Shape,
} from '@deft/core';
import { WebGpuBufferResource } from '../backend/webgpu-buffer-resource.js';
import { BUFFER_USAGE } from '../device/gpu-flags.js';

/**
 * A weight `[rows, columns]` held in GGUF blocks on the device: the file's bytes as they are, in one
 * storage buffer padded to 16 bytes (`rows` runs of `columns / blockValues` blocks). Its `dtype` is
 * `f32`, the type it is read as; only `matmul`'s weight and `embedding`'s table accept it, and they
 * dequantize inside the kernel. Created by the model ops that own it (`ops.createQuantizedWeight`);
 * disposed by its holder or, at the latest, by `backend.dispose()` of the backend whose ops made it.
 */
export class WebGpuQuantizedWeight extends WebGpuBufferResource implements DeviceTensor {
  readonly dtype = 'f32';

  constructor(
    /** The model ops that created it. */
    owner: object,
    shape: Shape,
    readonly quantization: BlockQuantization,
    buffer: GPUBuffer,
    /** Called once, when it is disposed (the backend stops tracking it). */
    onDispose: (weight: WebGpuQuantizedWeight) => void,
  ) {
    super(owner, shape, buffer, () => onDispose(this));
  }
}

/**
 * Bytes of the storage buffer that holds `blocks` (padded to 16).
 * @throws CapacityError when it exceeds what the device binds in one binding
 *   (`maxStorageBufferBindingSize`) or allocates (`maxBufferSize`).
 */
export function blocksBufferSize(
  device: GPUDevice,
  quantization: BlockQuantization,
  blocks: Uint8Array,
): number {
  const size = Math.max(16, Math.ceil(blocks.byteLength / 16) * 16);
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  if (size > limit) {
    throw new CapacityError(
      `a ${quantization} weight needs ${size} bytes, more than this device binds in one buffer (${limit}); use a smaller matrix or a device with a larger maxStorageBufferBindingSize`,
      { argument: 'blocks', expected: `<= ${limit} bytes`, actual: size },
    );
  }
  return size;
}

/**
 * Uploads checked blocks into a new storage buffer of `size` bytes ({@link blocksBufferSize}): the
 * bytes as they are, the last partial word zero-padded (WebGPU writes whole words). Nothing is decoded
 * and the host copies at most 3 bytes.
 */
export function uploadBlocks(
  device: GPUDevice,
  quantization: BlockQuantization,
  blocks: Uint8Array,
  size: number,
): GPUBuffer {
  const buffer = device.createBuffer({
    size,
    usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_DST,
    label: `deft ${quantization} weight`,
  });
  const whole = blocks.byteLength - (blocks.byteLength % 4);
  if (whole > 0) device.queue.writeBuffer(buffer, 0, blocks.buffer, blocks.byteOffset, whole);
  if (whole < blocks.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(blocks.subarray(whole));
    device.queue.writeBuffer(buffer, whole, tail);
  }
  return buffer;
}

/** The quantized weight `tensor` if `owner` created it; `undefined` for any other tensor. @throws DisposedError when it is disposed. */
export function ownQuantizedWeight(
  owner: object,
  argument: string,
  tensor: DeviceTensor,
): WebGpuQuantizedWeight | undefined {
  if (!(tensor instanceof WebGpuQuantizedWeight) || tensor.owner !== owner) return undefined;
  if (tensor.disposed) throw new DisposedError(argument);
  return tensor;
}
