import type { DType } from '@deft/core';

/** Largest relative error `‖o − ref‖ / ‖ref‖` accepted against the float64 reference, per KV dtype. */
export const ATTENTION_TOLERANCE: Readonly<Record<DType, number>> = { f32: 1e-5, f16: 2e-3 };

/**
 * `‖actual − expected‖₂ / ‖expected‖₂` (the absolute norm when `expected` is all zero). Any NaN or
 * infinity in `actual` gives `Infinity`, so NaN never passes a tolerance.
 *
 * @throws {RangeError} when the lengths differ.
 */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) {
    throw new RangeError(`output has ${actual.length} values, the reference ${expected.length}`);
  }
  let difference = 0;
  let reference = 0;
  for (let index = 0; index < actual.length; index++) {
    const value = actual[index]!;
    if (!Number.isFinite(value)) return Number.POSITIVE_INFINITY;
    const delta = value - expected[index]!;
    difference += delta * delta;
    reference += expected[index]! * expected[index]!;
  }
  return reference === 0 ? Math.sqrt(difference) : Math.sqrt(difference / reference);
}

/**
 * `max |actual − expected| / max |expected|`: the worst element error against the largest reference
 * magnitude, for outputs whose elements should each be close (model ops). Any NaN or infinity in
 * `actual` gives `Infinity`.
 *
 * @throws {RangeError} when the lengths differ.
 */
export function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) {
    throw new RangeError(`output has ${actual.length} values, the reference ${expected.length}`);
  }
  let scale = 1e-30;
  let error = 0;
  for (let index = 0; index < expected.length; index++) {
    const value = actual[index]!;
    if (!Number.isFinite(value)) return Number.POSITIVE_INFINITY;
    scale = Math.max(scale, Math.abs(expected[index]!));
    error = Math.max(error, Math.abs(value - expected[index]!));
  }
  return error / scale;
}
