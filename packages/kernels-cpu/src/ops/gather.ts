import { readRowAsF32, type WeightData } from './read-row-as-f32.js';

/**
 * Embedding lookup on host arrays: `out[i, :] = table[tokens[i], :]`.
 *
 * @param table `[vocabSize, width]`, f32, binary16 bits or GGUF blocks (one row dequantized per token)
 * @param tokens `[rows]` ids (already validated)
 * @param out `[rows, width]` f32
 * @example
 * ```ts
 * embeddingHost(table, new Int32Array([1, 403]), out, 64);
 * ```
 */
export function embeddingHost(table: WeightData, tokens: Int32Array, out: Float32Array, width: number): void {
  const row = new Float32Array(width);
  for (let index = 0; index < tokens.length; index++) {
    readRowAsF32(table, tokens[index]! * width, width, row);
    out.set(row, index * width);
  }
}

/**
 * Row gather on host arrays: `out[r, :] = x[rows[r], :]`.
 *
 * @param x `[M, width]` f32
 * @param rows `[R]` (already validated)
 * @param out `[R, width]` f32
 * @example
 * ```ts
 * gatherRowsHost(hidden, new Int32Array([4]), last, 64);
 * ```
 */
export function gatherRowsHost(x: Float32Array, rows: Int32Array, out: Float32Array, width: number): void {
  for (let index = 0; index < rows.length; index++) {
    const source = rows[index]! * width;
    out.set(x.subarray(source, source + width), index * width);
  }
}
