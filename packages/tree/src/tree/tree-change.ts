/**
 * Which `(node, position)` pairs {@link TokenTree.queries} returns:
 * - `'leaves'`: every leaf at its last token (ordinary decoding: one query per live sequence);
 * - `'all-nodes'`: every node at its last token (a speculative token tree of one-token nodes: the base node's
 *   last token plus every draft token);
 * - `'all-tokens'`: every token of every node (prefill, or a speculative tree with multi-token nodes).
 *
 * Nodes holding no tokens have nothing to query and are skipped in every mode.
 */
export type TreeQueryMode = 'leaves' | 'all-nodes' | 'all-tokens';

/** Queries in the layout the planner reads: query `i` is `(nodes[i], positions[i])`, in depth-first order. */
export interface TreeQueryList {
  /** `[numQueries]` node id of each query. */
  readonly nodes: Int32Array;
  /** `[numQueries]` position of each query inside its node, `0 <= position < tokenCount(node)`. */
  readonly positions: Int32Array;
}

/**
 * What {@link TokenTree.commitPath} did: the tokens of `merged` (top-down, the first `acceptedCounts[i]`
 * tokens of `merged[i]`) were appended to `into` after its first `start` tokens, and every descendant of `into`
 * (the merged nodes included) was removed.
 *
 * A KV cache follows it by moving the KV of token `j` of `merged[i]` to token
 * `start + acceptedCounts[0] + … + acceptedCounts[i - 1] + j` of `into`, then freeing `removed`.
 */
export interface CommitResult {
  /** The node that received the accepted tokens (now a leaf). */
  readonly into: number;
  /** The deepest accepted node (the `node` argument). */
  readonly node: number;
  /** Token count of `into` before the commit. */
  readonly start: number;
  /** `[numMerged]` nodes strictly below `into` down to `node`, top-down. Empty when `node === into`. */
  readonly merged: Int32Array;
  /** `[numMerged]` how many leading tokens of each merged node were accepted. */
  readonly acceptedCounts: Int32Array;
  /** Every removed id (all former descendants of `into`), in depth-first pre-order. */
  readonly removed: Int32Array;
}

/**
 * A change to a token tree, as reported to {@link TokenTree.on} listeners. Ids are those of the tree.
 * - `fork`: `children` were added below `node`, in this order, after its existing children;
 * - `append`: `tokens` were appended to leaf `node`, becoming its tokens `start .. start + tokens.length - 1`;
 * - `prune`: the subtree of `node` was removed; `removed` lists it in depth-first pre-order;
 * - `commit`: see {@link CommitResult}.
 */
export type TreeChange =
  | { readonly type: 'fork'; readonly node: number; readonly children: Int32Array }
  | { readonly type: 'append'; readonly node: number; readonly start: number; readonly tokens: Int32Array }
  | { readonly type: 'prune'; readonly node: number; readonly removed: Int32Array }
  | ({ readonly type: 'commit' } & CommitResult);

/**
 * Phases a listener can subscribe to:
 * - `'beforeChange'`: called after the tree validated the change and before it mutates anything; a listener
 *   may throw to veto the change (the tree then stays exactly as it was and the error reaches the caller).
 *   Listeners of this phase must not change anything themselves.
 * - `'change'`: called after the change, in subscription order.
 */
export type TreeChangePhase = 'beforeChange' | 'change';

/** A change listener. */
export type TreeChangeListener = (change: TreeChange) => void;
