/**
 * Where the chunk being filled ends inside a run of tokens: the cutting rule shared by every strategy.
 *
 * A chunk holds about `chunkSize` tokens. Cuts fall on page boundaries (`local % pageSize === 0`, since
 * every node starts on a fresh page) when that keeps the chunk within `tolerance` tokens of
 * `chunkSize`; a run that would leave a tail of at most `tolerance` tokens is taken whole.
 *
 * @param local First token of the run still to place (node-local index).
 * @param end End of the run (exclusive).
 * @param fill Tokens already in the current chunk.
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
  if (end <= exact + tolerance) return end;
  const down = exact - (exact % pageSize);
  if (down > local && fill + down - local >= chunkSize - tolerance) return down;
  const up = down + pageSize;
  if (up < end && fill + up - local <= chunkSize + tolerance) return up;
  return exact;
}

/** Slack allowed around the chunk size so cuts can land on page boundaries. */
export function chunkTolerance(chunkSize: number, pageSize: number): number {
  if (!Number.isFinite(chunkSize)) return 0;
  return Math.min(Math.floor(chunkSize / 4), pageSize - 1);
}
