/**
 * Splits `workgroups` into a 2-D grid `(x, y)` with `x <= maxPerDimension` and `x · y >= workgroups`,
 * so a linear dispatch larger than `maxComputeWorkgroupsPerDimension` still fits. Kernels recover the
 * linear index as `id.x + id.y · x · workgroupSize` and skip indices past the end.
 */
export function linearDispatchGrid(workgroups: number, maxPerDimension: number): [number, number] {
  if (workgroups <= 0) return [0, 0];
  const x = Math.min(workgroups, maxPerDimension);
  return [x, Math.ceil(workgroups / x)];
}
