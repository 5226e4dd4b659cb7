import type { PlanStrategy } from '@deft/core';

/**
 * What one forward pass over a tree did. KV byte counts cover every layer, K and V together.
 * `sequenceKvBytes / kvBytesRead` is how much less KV the tree plan reads than sequence-based attention
 * (each query reading its whole root-to-token path, as Flash-Decoding and paged attention do).
 */
export interface StepStats {
  /** Queries (new tokens) in the pass. */
  readonly queries: number;
  /** Rows whose logits were produced. */
  readonly outputRows: number;
  /** Live nodes of the tree after the pass. */
  readonly treeNodes: number;
  /** Tokens held by the tree. */
  readonly treeTokens: number;
  /** Leaves of the tree (live sequences). */
  readonly leaves: number;
  /** The plan's strategy. */
  readonly planStrategy: PlanStrategy;
  /** KV bytes the tree plan reads, all layers. */
  readonly kvBytesRead: number;
  /** KV bytes sequence-based attention would read for the same queries, all layers. */
  readonly sequenceKvBytes: number;
  /** KV bytes of the tokens visible to at least one query, all layers (the floor). */
  readonly uniqueKvBytes: number;
  /** Pages of the pool in use after the pass. */
  readonly pagesUsed: number;
  /** Pages read by more than one live sequence (they belong to nodes with at least two leaves below). */
  readonly pagesShared: number;
  /** Host time spent planning, milliseconds. */
  readonly planMilliseconds: number;
  /** Time of the forward pass including the logits download, milliseconds. */
  readonly forwardMilliseconds: number;
}
