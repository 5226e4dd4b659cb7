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
