/** Streaming multiprocessors of the reference GPU (H100 SXM: 132) used by the default work-unit target. */
export const REFERENCE_MULTIPROCESSORS = 132;

/** Default target number of work units per layer: a few waves over every multiprocessor. */
export const DEFAULT_TARGET_WORK_UNITS = REFERENCE_MULTIPROCESSORS * 4;

/** The planner never picks chunks shorter than this many tokens on its own (an explicit `chunkSize` may). */
export const MIN_AUTO_CHUNK_SIZE = 32;

/**
 * The chunk size the planner picks when none is given: enough chunks that `(kvHead, chunk)` work units
 * reach `targetWorkUnits`, but never fewer than {@link MIN_AUTO_CHUNK_SIZE} tokens a chunk, and then
 * evened out so the last chunk is not a runt (`totalTokens` split into `ceil(total / size)` equal parts).
 *
 * @param totalTokens Tokens to be cut into chunks (the flattened tree, or Σ path lengths for `sequence`).
 * @param numKvHeads KV heads; each work unit is one KV head of one chunk.
 * @param targetWorkUnits Desired work units per layer (default {@link DEFAULT_TARGET_WORK_UNITS}).
 * @returns A chunk size `>= 1`.
 * @example
 * ```ts
 * autoChunkSize(1256, 8); // 32: 1256 tokens, 66 chunks wanted, but never below 32 tokens
 * ```
 */
export function autoChunkSize(
  totalTokens: number,
  numKvHeads: number,
  targetWorkUnits: number = DEFAULT_TARGET_WORK_UNITS,
): number {
  const targetChunks = Math.max(1, Math.floor(targetWorkUnits / Math.max(1, numKvHeads)));
  const size = Math.max(MIN_AUTO_CHUNK_SIZE, Math.ceil(totalTokens / targetChunks));
  const chunks = Math.max(1, Math.ceil(totalTokens / size));
  return Math.max(1, Math.ceil(totalTokens / chunks));
}
