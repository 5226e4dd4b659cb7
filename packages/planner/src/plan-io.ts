import type { AttentionShape, PlanIO } from '@deft/core';
import { dtypeBytes } from '@deft/core';

/** Index arrays of a plan whose bytes count as `indexBytes`. */
export interface PlanIndexArrays {
  readonly chunkTokenIndptr: Int32Array;
  readonly tokenSlots: Int32Array;
  readonly tokenSegments: Int32Array;
  readonly chunkSegmentCount: Int32Array;
  readonly chunkQueryIndptr: Int32Array;
  readonly chunkQueries: Int32Array;
  readonly chunkMaskOffset: Int32Array;
  readonly chunkFullyVisible: Uint8Array;
  readonly queryPartialIndptr: Int32Array;
  readonly queryPartials: Int32Array;
  readonly mask: Uint32Array;
}

/**
 * The IO model of one layer's attention under a plan (see `PlanIO` in `@deft/core`).
 *
 * @param uniqueTokens Tokens visible to at least one query.
 * @param arrays The plan's arrays; `tokensRead` is `tokenSlots.length`.
 */
export function computePlanIO(uniqueTokens: number, arrays: PlanIndexArrays, shape: AttentionShape): PlanIO {
  const bytesPerToken = 2 * shape.numKvHeads * shape.headDim * dtypeBytes(shape.kvDtype);
  const tokensRead = arrays.tokenSlots.length;
  const numPartials = arrays.chunkQueries.length;
  const indexBytes =
    arrays.chunkTokenIndptr.byteLength +
    arrays.tokenSlots.byteLength +
    arrays.tokenSegments.byteLength +
    arrays.chunkSegmentCount.byteLength +
    arrays.chunkQueryIndptr.byteLength +
    arrays.chunkQueries.byteLength +
    arrays.chunkMaskOffset.byteLength +
    arrays.chunkFullyVisible.byteLength +
    arrays.queryPartialIndptr.byteLength +
    arrays.queryPartials.byteLength;
  return {
    uniqueTokens,
    tokensRead,
    uniqueKvBytes: uniqueTokens * bytesPerToken,
    kvBytesRead: tokensRead * bytesPerToken,
    maskBytes: arrays.mask.byteLength,
    partialBytes: 2 * numPartials * shape.numHeads * (shape.headDim + 1) * 4,
    indexBytes,
  };
}
