import type { AttentionShape } from '@deft/core';
import { dtypeBytes } from '@deft/core';

/** Streaming multiprocessors of the reference GPU (H100 SXM: 132) used by the default work-unit target. */
export const REFERENCE_MULTIPROCESSORS = 132;

/** Default target number of work units per layer: a few waves over every multiprocessor. */
export const DEFAULT_TARGET_WORK_UNITS = REFERENCE_MULTIPROCESSORS * 4;

/** The planner never picks chunks shorter than this many tokens on its own (an explicit `chunkSize` may). */
export const MIN_AUTO_CHUNK_SIZE = 32;

/**
 * Default bound on the partial-result traffic the automatic chunk size may cause, as a multiple of the
 * unique KV bytes. Every extra chunk seen by `Q` queries writes and reads back `Q` partial states, so a
 * tree whose tokens are each seen by hundreds of queries (a speculative token tree) gets fewer, longer
 * chunks; kernels then find parallelism in query tiles instead.
 */
export const DEFAULT_MAX_PARTIAL_RATIO = 4;

/** Options of {@link autoChunkSize}. */
export interface AutoChunkSizeOptions {
  /** Desired `(kvHead, chunk)` work units per layer (default {@link DEFAULT_TARGET_WORK_UNITS}). */
  readonly targetWorkUnits?: number;
  /** Mean number of queries that see a token (1 for `sequence`); default 1. */
  readonly queriesPerToken?: number;
  /** Bound on estimated partial bytes / unique KV bytes (default {@link DEFAULT_MAX_PARTIAL_RATIO}). */
  readonly maxPartialRatio?: number;
}

/**
 * The chunk size the planner picks when none is given:
 * 1. enough chunks that `(kvHead, chunk)` work units reach `targetWorkUnits`: `ceil(total / (targetWorkUnits / numKvHeads))`;
 * 2. but never below {@link MIN_AUTO_CHUNK_SIZE} tokens;
 * 3. and long enough that the estimated partial traffic (`chunks × queriesPerToken` partial states of
 *    `2 × numHeads × (headDim + 1) × 4` bytes) stays within `maxPartialRatio ×` the unique KV bytes;
 * 4. then evened out so the last chunk is not a runt (`total` split into `ceil(total / size)` equal parts).
 *
 * @param totalTokens Tokens to be cut into chunks (the flattened tree, or Σ path lengths for `sequence`).
 * @returns A chunk size `>= 1`.
 * @example
 * ```ts
 * autoChunkSize(12000, { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' }); // 182: 66 chunks
 * ```
 */
export function autoChunkSize(
  totalTokens: number,
  shape: AttentionShape,
  options: AutoChunkSizeOptions = {},
): number {
  const targetWorkUnits = options.targetWorkUnits ?? DEFAULT_TARGET_WORK_UNITS;
  const queriesPerToken = Math.max(1, options.queriesPerToken ?? 1);
  const maxPartialRatio = options.maxPartialRatio ?? DEFAULT_MAX_PARTIAL_RATIO;
  const targetChunks = Math.max(1, Math.floor(targetWorkUnits / Math.max(1, shape.numKvHeads)));
  const kvBytesPerToken = 2 * shape.numKvHeads * shape.headDim * dtypeBytes(shape.kvDtype);
  const partialBytesPerQuery = 2 * shape.numHeads * (shape.headDim + 1) * 4;
  const partialBound = (queriesPerToken * partialBytesPerQuery) / (maxPartialRatio * kvBytesPerToken);
  const size = Math.max(MIN_AUTO_CHUNK_SIZE, Math.ceil(totalTokens / targetChunks), Math.ceil(partialBound));
  const chunks = Math.max(1, Math.ceil(totalTokens / size));
  return Math.max(1, Math.ceil(totalTokens / chunks));
}
