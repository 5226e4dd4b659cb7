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

/** Most elements of a quantized weight: the kernels index its values with a u32. */
export const MAX_QUANTIZED_ELEMENTS = 2 ** 32 - 1;

/** The device limits {@link blocksBufferSize} checks against (a `GPUDevice`'s `limits` has them). */
export interface BlocksBufferLimits {
  readonly maxBufferSize: number;
  readonly maxStorageBufferBindingSize: number;
}

/**
 * Bytes of the storage buffer that holds a weight `shape` (`[rows, columns]`, checked) of `byteLength`
 * bytes of blocks (padded to 16).
 * @throws CapacityError when `rows · columns` exceeds {@link MAX_QUANTIZED_ELEMENTS} (the kernels' u32
 *   element index), or the buffer exceeds what the device binds in one binding
 *   (`maxStorageBufferBindingSize`) or allocates (`maxBufferSize`).
 */
export function blocksBufferSize(
  limits: BlocksBufferLimits,
  quantization: BlockQuantization,
  shape: readonly [number, number],
  byteLength: number,
): number {
  const elements = shape[0] * shape[1];
  if (elements > MAX_QUANTIZED_ELEMENTS) {
    throw new CapacityError(
      `a ${quantization} weight [${shape[0]}, ${shape[1]}] has ${elements} elements, above the ${MAX_QUANTIZED_ELEMENTS} a 32-bit element index reaches; split it into smaller matrices`,
      { argument: 'shape', expected: `<= ${MAX_QUANTIZED_ELEMENTS} elements`, actual: elements },
    );
  }
  const size = Math.max(16, Math.ceil(byteLength / 16) * 16);
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
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
 * and the host copies at most 3 bytes. The buffer is destroyed again when a write throws.
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
  try {
    const whole = blocks.byteLength - (blocks.byteLength % 4);
    if (whole > 0) device.queue.writeBuffer(buffer, 0, blocks.buffer, blocks.byteOffset, whole);
    if (whole < blocks.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(blocks.subarray(whole));
      device.queue.writeBuffer(buffer, whole, tail);
    }
  } catch (error) {
    // Nobody holds the buffer yet: a write that throws must not leave it allocated.
    buffer.destroy();
    throw error;
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
