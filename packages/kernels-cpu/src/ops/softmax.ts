/**
 * Softmax of each row of `x / temperature` on host arrays (float64 sums, max-subtracted).
 *
 * @param x `[rows, columns]` f32
 * @param out `[rows, columns]` f32; may be `x`
 * @example
 * ```ts
 * softmaxHost(logits, probabilities, 1, 512, 0.8);
 * ```
 */
export function softmaxHost(
  x: Float32Array,
  out: Float32Array,
  rows: number,
  columns: number,
  temperature: number,
): void {
  for (let row = 0; row < rows; row++) {
    const base = row * columns;
    let maximum = Number.NEGATIVE_INFINITY;
    for (let column = 0; column < columns; column++) maximum = Math.max(maximum, x[base + column]!);
    let sum = 0;
    for (let column = 0; column < columns; column++) {
      const value = Math.exp((x[base + column]! - maximum) / temperature);
      out[base + column] = value;
      sum += value;
    }
    for (let column = 0; column < columns; column++) out[base + column] = out[base + column]! / sum;
  }
}

/**
 * Log-softmax (natural log) of each row on host arrays: `x − max − log Σ e^(x − max)`, in float64.
 *
 * @param x `[rows, columns]` f32
 * @param out `[rows, columns]` f32; may be `x`
 * @example
 * ```ts
 * logSoftmaxHost(logits, logits, 1, 512);
 * ```
 */
export function logSoftmaxHost(x: Float32Array, out: Float32Array, rows: number, columns: number): void {
  for (let row = 0; row < rows; row++) {
    const base = row * columns;
    let maximum = Number.NEGATIVE_INFINITY;
    for (let column = 0; column < columns; column++) maximum = Math.max(maximum, x[base + column]!);
    let sum = 0;
    for (let column = 0; column < columns; column++) sum += Math.exp(x[base + column]! - maximum);
    const logNormaliser = maximum + Math.log(sum);
    for (let column = 0; column < columns; column++) out[base + column] = x[base + column]! - logNormaliser;
  }
}
