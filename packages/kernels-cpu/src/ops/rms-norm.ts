import { readRowAsF32 } from './read-row-as-f32.js';

/**
 * RMSNorm of each row on host arrays (float64 sums): `out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + epsilon) · weight`.
 *
 * @param x `[rows, width]` f32
 * @param weight `[width]`, f32 or binary16 bits
 * @param out `[rows, width]` f32; may be `x`
 * @example
 * ```ts
 * rmsNormHost(x, weight, x, rows, 64, 1e-5);
 * ```
 */
export function rmsNormHost(
  x: Float32Array,
  weight: Float32Array | Uint16Array,
  out: Float32Array,
  rows: number,
  width: number,
  epsilon: number,
): void {
  const scale = new Float32Array(width);
  readRowAsF32(weight, 0, width, scale);
  for (let row = 0; row < rows; row++) {
    const base = row * width;
    let sumOfSquares = 0;
    for (let index = 0; index < width; index++) {
      const value = x[base + index]!;
      sumOfSquares += value * value;
    }
    const inverse = 1 / Math.sqrt(sumOfSquares / width + epsilon);
    for (let index = 0; index < width; index++)
      out[base + index] = x[base + index]! * inverse * scale[index]!;
  }
}
