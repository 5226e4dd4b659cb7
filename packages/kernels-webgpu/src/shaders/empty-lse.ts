/**
 * The log-sum-exp (base 2) of the empty attention state inside the WebGPU kernels.
 *
 * The partial-state convention of `@deft/core` writes the empty state as `lse = −∞`. WGSL does not
 * guarantee infinities (shaders may be compiled assuming finite values), so these kernels use this
 * finite sentinel instead and treat any `lse <= EMPTY_LSE_THRESHOLD` as empty. Real scores are far
 * above it (a base-2 score of −1e30 would need |q · k| ≈ 1e30).
 */
export const EMPTY_LSE = -3.0e38;

/** Anything at or below this is the empty state (half of {@link EMPTY_LSE}, robust to rounding). */
export const EMPTY_LSE_THRESHOLD = -1.5e38;

/** WGSL constants for the sentinel. */
export function emptyLseWgsl(): string {
  return ['const EMPTY_LSE: f32 = -3.0e38;', 'const EMPTY_LSE_THRESHOLD: f32 = -1.5e38;'].join('\n');
}
