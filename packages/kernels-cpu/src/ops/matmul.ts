import { readRowAsF32, type WeightData } from './read-row-as-f32.js';

/**
 * `out = x · weightᵀ` on host arrays, each dot product accumulated in float64.
 *
 * @param x `[rows, inner]` f32
 * @param weight `[columns, inner]`, f32, binary16 bits or GGUF blocks (dequantized one row at a time)
 * @param out `[rows, columns]` f32 (must not alias `x`)
 * @example
 * ```ts
 * matmulHost(new Float32Array([1, 2]), new Float32Array([3, 4]), out, 1, 2, 1); // out[0] = 11
 * ```
 */
export function matmulHost(
  x: Float32Array,
  weight: WeightData,
  out: Float32Array,
  rows: number,
  inner: number,
  columns: number,
): void {
  const weightRow = new Float32Array(inner);
  for (let column = 0; column < columns; column++) {
    // One weight row stays hot while every input row is dotted with it.
    readRowAsF32(weight, column * inner, inner, weightRow);
    for (let row = 0; row < rows; row++) {
      const base = row * inner;
      let sum = 0;
      let index = 0;
      for (; index + 3 < inner; index += 4) {
        sum +=
          x[base + index]! * weightRow[index]! +
          x[base + index + 1]! * weightRow[index + 1]! +
          x[base + index + 2]! * weightRow[index + 2]! +
          x[base + index + 3]! * weightRow[index + 3]!;
      }
      for (; index < inner; index++) sum += x[base + index]! * weightRow[index]!;
      out[row * columns + column] = sum;
    }
  }
}
