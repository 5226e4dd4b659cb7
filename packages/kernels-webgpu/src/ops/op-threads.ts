/** Invocations per workgroup of the elementwise model-op kernels (one element each). */
export const ELEMENT_THREADS = 64;

/** Invocations per workgroup of the row kernels (RMSNorm, softmax): one workgroup reduces one row. */
export const ROW_THREADS = 256;

/** Edge of the square output tile of the matmul kernel (a `TILE × TILE` workgroup). */
export const MATMUL_TILE = 16;

/** WGSL of the workgroup-memory tree reduction of `scratch` (length {@link ROW_THREADS}) with `op`. */
export function rowReductionWgsl(functionName: string, combine: string): string {
  return `fn ${functionName}(local: u32, value: f32) -> f32 {
  scratch[local] = value;
  workgroupBarrier();
  for (var stride = ${ROW_THREADS / 2}u; stride > 0u; stride = stride >> 1u) {
    if (local < stride) {
      let a = scratch[local];
      let b = scratch[local + stride];
      scratch[local] = ${combine};
    }
    workgroupBarrier();
  }
  let result = scratch[0];
  workgroupBarrier();
  return result;
}`;
}
