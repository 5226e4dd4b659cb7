/**
 * Where the chunk being filled ends inside a run of tokens: the cutting rule shared by every strategy.
 *
 * A chunk holds at most `chunkSize` tokens. A cut inside a run moves back to the previous page boundary
 * (`local % pageSize === 0`, since every node starts on a fresh page) when the chunk still holds at
 * least `chunkSize - tolerance` tokens, so kernels can load whole pages; otherwise it is exact.
 *
 * @param local First token of the run still to place (node-local index).
 * @param end End of the run (exclusive).
 * @param fill Tokens already in the current chunk (`< chunkSize`).
 * @returns The end of the piece that goes into the current chunk; if it is below `end`, the chunk is full.
 */
export function nextChunkCut(
  local: number,
  end: number,
  fill: number,
  chunkSize: number,
  pageSize: number,
  tolerance: number,
): number {
  const exact = local + (chunkSize - fill);
  if (end <= exact) return end;
  const aligned = exact - (exact % pageSize);
  if (aligned > local && fill + aligned - local >= chunkSize - tolerance) return aligned;
  return exact;
}

/** Tokens a chunk may fall short of the chunk size so that its cut lands on a page boundary. */
export function chunkTolerance(chunkSize: number, pageSize: number): number {
  if (!Number.isFinite(chunkSize)) return 0;
  return Math.min(Math.floor(chunkSize / 4), pageSize - 1);
}
