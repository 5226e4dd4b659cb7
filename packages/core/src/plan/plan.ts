import type { DType } from '../tensor/dtype.js';

/** Version of the {@link TreeAttentionPlan} layout. Bumped on any incompatible change. */
export const PLAN_FORMAT_VERSION = 1 as const;

/**
 * How a plan groups the tree's KV with queries.
 * - `deft-flatten`: the DeFT default: tree KV flattened depth-first and cut into balanced chunks.
 * - `deft-node`: one chunk per tree node (KV-guided grouping without splitting).
 * - `deft-node-chunk`: per node, split into chunks of at most the chunk size.
 * - `sequence`: the baseline: every query reads its whole root-to-query path (Flash-Decoding, paged attention).
 */
export type PlanStrategy = 'deft-flatten' | 'deft-node' | 'deft-node-chunk' | 'sequence';

/** Every strategy, in a stable order. */
export const PLAN_STRATEGIES: readonly PlanStrategy[] = [
  'deft-flatten',
  'deft-node',
  'deft-node-chunk',
  'sequence',
];

/** Attention shape a plan's IO model is computed for. */
export interface AttentionShape {
  /** Query heads. */
  readonly numHeads: number;
  /** KV heads (grouped-query attention: `numHeads % numKvHeads === 0`). */
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Element type of the KV cache. */
  readonly kvDtype: DType;
}

/**
 * The IO model of one layer's attention under a plan, in bytes (per layer, K and V together).
 * `kvBytesRead / uniqueKvBytes` is the plan's redundancy; 1 means each KV byte is read once.
 */
export interface PlanIO {
  /** Tokens of the tree visible to at least one query. */
  readonly uniqueTokens: number;
  /** Tokens the plan's chunks read (a token read by two chunks counts twice). */
  readonly tokensRead: number;
  /** `uniqueTokens × 2 × numKvHeads × headDim × bytes(kvDtype)`: the floor of KV traffic. */
  readonly uniqueKvBytes: number;
  /** `tokensRead × 2 × numKvHeads × headDim × bytes(kvDtype)`. */
  readonly kvBytesRead: number;
  /** Bytes of visibility masks. */
  readonly maskBytes: number;
  /** Bytes of partial results written and read back by the reduction: `2 × numPartials × numHeads × (headDim + 1) × 4`. */
  readonly partialBytes: number;
  /** Bytes of the plan's index arrays (uploaded once per step). */
  readonly indexBytes: number;
}

/**
 * One step's attention plan: which KV tokens each chunk reads, which queries see them, and where the
 * partial results go. Plain typed arrays: serialisable, built once per decoding step by a planner and
 * reused by every layer.
 *
 * Chunks. Chunk `c` reads the tokens `chunkTokenIndptr[c] .. chunkTokenIndptr[c + 1]` of
 * `tokenSlots` (in that order). A chunk's tokens are grouped into segments (runs of one tree node that
 * all its queries either see or do not see); `tokenSegments` gives each token's segment, numbered from
 * 0 inside its chunk, and `chunkSegmentCount[c]` the number of segments.
 *
 * Queries. Chunk `c` is seen by the queries `chunkQueries[chunkQueryIndptr[c] .. chunkQueryIndptr[c + 1]]`
 * (query indices, ascending). The `j`-th query of chunk `c` writes its partial result to slot
 * `chunkQueryIndptr[c] + j`, so `numPartials = chunkQueryIndptr[numChunks]`.
 *
 * Visibility mask. For chunk `c` with `S` segments and `Q` queries, `W = ceil(Q / 32)` words per
 * segment start at `mask[chunkMaskOffset[c]]`, laid out `[S, W]`: bit `j % 32` (least significant bit
 * first) of word `[s][j >> 5]` is set iff the `j`-th query of the chunk sees segment `s`.
 * `chunkFullyVisible[c] = 1` when every query of the chunk sees every token of it (kernels may skip
 * the mask).
 *
 * Reduction. Query `q` merges the partial slots `queryPartials[queryPartialIndptr[q] .. queryPartialIndptr[q + 1]]`
 * (see {@link PartialStateLayout}); a query with no slot sees no token and its output is zero.
 */
export interface TreeAttentionPlan {
  readonly version: typeof PLAN_FORMAT_VERSION;
  readonly strategy: PlanStrategy;
  /** Tokens per KV page; a slot is `page * pageSize + offsetInPage`. */
  readonly pageSize: number;
  readonly numQueries: number;
  readonly numChunks: number;
  readonly numPartials: number;
  /** `[numChunks + 1]` offsets into `tokenSlots` / `tokenSegments`. */
  readonly chunkTokenIndptr: Int32Array;
  /** `[chunkTokenIndptr[numChunks]]` KV slot of each token a chunk reads. */
  readonly tokenSlots: Int32Array;
  /** `[chunkTokenIndptr[numChunks]]` segment of each token, numbered from 0 within its chunk. */
  readonly tokenSegments: Int32Array;
  /** `[numChunks]` segments per chunk. */
  readonly chunkSegmentCount: Int32Array;
  /** `[numChunks + 1]` offsets into `chunkQueries`; also the first partial slot of each chunk. */
  readonly chunkQueryIndptr: Int32Array;
  /** `[numPartials]` query indices seen by each chunk, ascending within a chunk. */
  readonly chunkQueries: Int32Array;
  /** `[numChunks + 1]` offsets into `mask` (u32 words). */
  readonly chunkMaskOffset: Int32Array;
  /** Visibility bits, `[segments, ceil(queries / 32)]` per chunk, LSB-first. */
  readonly mask: Uint32Array;
  /** `[numChunks]` 1 when every query of the chunk sees all of its tokens, else 0. */
  readonly chunkFullyVisible: Uint8Array;
  /** `[numQueries + 1]` offsets into `queryPartials`. */
  readonly queryPartialIndptr: Int32Array;
  /** `[numPartials]` partial slots of each query, in ascending chunk order. */
  readonly queryPartials: Int32Array;
  /** The IO model, for the shape the plan was built for. */
  readonly io: PlanIO;
  /** The shape the IO model was computed for. */
  readonly shape: AttentionShape;
}

/**
 * The partial-state convention shared by every backend.
 *
 * For a set of keys `t` seen by a query head, with scores `s_t = scale · (q · k_t)`:
 * - `lse = log2(Σ_t exp(s_t))`, **base 2**: kernels pre-multiply scores by `log2(e)` and use `exp2`;
 * - `o = Σ_t exp(s_t) · v_t / Σ_t exp(s_t)` (already normalised), fp32.
 *
 * Buffers: `o` is `[numPartials, numHeads, headDim]` f32 and `lse` is `[numPartials, numHeads]` f32.
 * Merging states `j`: `M = max_j lse_j`, `O = Σ_j o_j · 2^(lse_j − M) / Σ_j 2^(lse_j − M)`,
 * `LSE = M + log2(Σ_j 2^(lse_j − M))`. The empty state (no visible key) is `lse = −∞`, `o = 0` and
 * contributes nothing; merging only empty states gives the empty state (output zero).
 */
export interface PartialStateLayout {
  readonly o: '[numPartials, numHeads, headDim] f32';
  readonly lse: '[numPartials, numHeads] f32, base 2';
}
