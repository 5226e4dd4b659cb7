/**
 * Column of the largest value of each row on host arrays; ties go to the smaller column and NaN never
 * wins (a row of NaN gives column 0).
 *
 * @param x `[rows, columns]`
 * @returns `[rows]`
 * @example
 * ```ts
 * argmaxHost(new Float32Array([1, 3, 3]), 1, 3); // Int32Array [1]
 * ```
 */
export function argmaxHost(x: Float32Array, rows: number, columns: number): Int32Array {
  const result = new Int32Array(rows);
  for (let row = 0; row < rows; row++) {
    const base = row * columns;
    let best = 0;
    let bestValue = Number.NEGATIVE_INFINITY;
    for (let column = 0; column < columns; column++) {
      const value = x[base + column]!;
      if (value > bestValue) {
        bestValue = value;
        best = column;
      }
    }
    result[row] = best;
  }
  return result;
}

/**
 * The `k` largest values of each row on host arrays, largest first; ties go to the smaller column and
 * NaN is ranked below every number.
 *
 * @param x `[rows, columns]`
 * @returns `indices` and `values`, each `[rows, k]`
 * @example
 * ```ts
 * topKHost(new Float32Array([1, 3, 2]), 1, 3, 2); // indices [1, 2], values [3, 2]
 * ```
 */
export function topKHost(
  x: Float32Array,
  rows: number,
  columns: number,
  k: number,
): { indices: Int32Array; values: Float32Array } {
  const indices = new Int32Array(rows * k);
  const values = new Float32Array(rows * k);
  for (let row = 0; row < rows; row++) {
    const base = row * columns;
    const outBase = row * k;
    let filled = 0;
    for (let column = 0; column < columns; column++) {
      const raw = x[base + column]!;
      const value = Number.isNaN(raw) ? Number.NEGATIVE_INFINITY : raw;
      // Strictly greater than the current last keeps the earlier column on ties.
      if (filled === k && !(value > values[outBase + k - 1]!)) continue;
      let position = filled === k ? k - 1 : filled;
      while (position > 0 && value > values[outBase + position - 1]!) {
        values[outBase + position] = values[outBase + position - 1]!;
        indices[outBase + position] = indices[outBase + position - 1]!;
        position--;
      }
      values[outBase + position] = value;
      indices[outBase + position] = column;
      if (filled < k) filled++;
    }
  }
  return { indices, values };
}
