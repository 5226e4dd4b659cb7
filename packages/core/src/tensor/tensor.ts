import type { BlockQuantization } from './block-quantization.js';
import type { DType } from './dtype.js';

/** A shape, outermost dimension first (row-major, the last dimension contiguous). */
export type Shape = readonly number[];

/** Describes a dense row-major tensor without holding its data. */
export interface TensorDescriptor {
  readonly shape: Shape;
  readonly dtype: DType;
}

/**
 * A tensor owned by a backend (host memory, a `GPUBuffer`, device memory). Only the backend that
 * created it may read or write it. `dispose()` is idempotent; use after dispose throws `DisposedError`.
 */
export interface DeviceTensor extends TensorDescriptor {
  /** Name of the backend that owns the tensor. */
  readonly backend: string;
  /**
   * Set on a weight held in GGUF blocks (`ModelOps.createQuantizedWeight`): `dtype` is then `f32`, the
   * type its values are read as, and only `matmul`'s `weight` and `embedding`'s `table` accept it.
   */
  readonly quantization?: BlockQuantization;
  readonly disposed: boolean;
  dispose(): void;
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: Shape): number {
  let size = 1;
  for (const dimension of shape) size *= dimension;
  return size;
}

/** Formats a shape as `[a, b, c]` for messages. */
export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
