/**
 * A read-only view of a paged tree KV cache: what the planner needs and nothing more.
 *
 * Arrays are indexed by node id (ids may be sparse: only the ids listed in `order` are present;
 * entries of absent ids are ignored). Token `i` of node `n` lives in slot
 * `pages[pageIndptr[n] + floor(i / pageSize)] * pageSize + i % pageSize`: a node's tokens start at
 * offset 0 of its first page (children start on fresh pages).
 */
export interface PagedTreeView {
  /** Tokens per page. */
  readonly pageSize: number;
  /** `[numIds]` parent id of each node, `-1` for the root. */
  readonly parent: Int32Array;
  /** `[numIds]` tokens held by each node. */
  readonly tokenCount: Int32Array;
  /** `[numIds + 1]` offsets into `pages`. */
  readonly pageIndptr: Int32Array;
  /** Pages of each node, in token order. */
  readonly pages: Int32Array;
  /** `[numPresent]` present node ids in depth-first pre-order (a parent before its children, siblings in creation order). */
  readonly order: Int32Array;
}

/**
 * This step's queries: query `i` is `(nodes[i], positions[i])` and sees every token of the node's
 * ancestors plus tokens `0 ..= positions[i]` of the node itself.
 */
export interface TreeQueries {
  /** `[numQueries]` node id of each query. */
  readonly nodes: Int32Array;
  /** `[numQueries]` position of each query inside its node, `0 <= position < tokenCount[node]`. */
  readonly positions: Int32Array;
}
