/**
 * `out = silu(gate) · up` elementwise on host arrays, `silu(g) = g / (1 + e^(−g))`.
 * `out` may be `gate` or `up`.
 * @example
 * ```ts
 * swigluHost(gate, up, gate);
 * ```
 */
export function swigluHost(gate: Float32Array, up: Float32Array, out: Float32Array): void {
  for (let index = 0; index < out.length; index++) {
    const value = gate[index]!;
    out[index] = (value / (1 + Math.exp(-value))) * up[index]!;
  }
}

/**
 * `out = a + b` elementwise on host arrays; `out` may be `a` or `b`.
 * @example
 * ```ts
 * addHost(residual, attentionOut, residual);
 * ```
 */
export function addHost(a: Float32Array, b: Float32Array, out: Float32Array): void {
  for (let index = 0; index < out.length; index++) out[index] = a[index]! + b[index]!;
}
