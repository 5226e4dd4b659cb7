import { kvBytesPerToken } from '@deft/core';
import { workloadQueries } from './parse-workload.js';
import type { Workload } from './workload.js';

/** Sizes of a workload's tree and of what its queries see. */
export interface WorkloadSummary {
  readonly nodes: number;
  readonly leaves: number;
  /** Nodes on the longest root-to-leaf path. */
  readonly depth: number;
  /** Tokens held by the tree. */
  readonly treeTokens: number;
  readonly queries: number;
  /** Tokens seen by at least one query: what a tree-aware kernel must read once. */
  readonly uniqueVisibleTokens: number;
  /** Σ over queries of the tokens each sees (its path): what the sequence baseline reads. */
  readonly pathTokens: number;
  /** K and V bytes of one token in one layer. */
  readonly kvBytesPerToken: number;
}

/**
 * Counts a workload's nodes, tokens and the tokens its queries see.
 *
 * @example
 * ```ts
 * summarizeWorkload(findBuiltinWorkload('sd-t64')!).pathTokens; // 64 × 1001
 * ```
 */
export function summarizeWorkload(workload: Workload): WorkloadSummary {
  const { nodes } = workload;
  const count = nodes.length;
  const hasChild = new Uint8Array(count);
  const prefixTokens = new Float64Array(count); // tokens of the node's ancestors
  const level = new Int32Array(count);
  let treeTokens = 0;
  let depth = 0;
  nodes.forEach((node, index) => {
    treeTokens += node.tokens;
    if (node.parent >= 0) {
      hasChild[node.parent] = 1;
      prefixTokens[index] = prefixTokens[node.parent]! + nodes[node.parent]!.tokens;
      level[index] = level[node.parent]! + 1;
    }
    depth = Math.max(depth, level[index]! + 1);
  });
  // Visible extent of each node: the furthest position any query reaches (−1: unseen).
  const visibleEnd = new Int32Array(count).fill(-1);
  const queries = workloadQueries(workload);
  let pathTokens = 0;
  for (const [node, position] of queries) {
    pathTokens += prefixTokens[node]! + position + 1;
    visibleEnd[node] = Math.max(visibleEnd[node]!, position);
  }
  // Children come after parents: propagate "fully seen" from the leaves up.
  for (let index = count - 1; index > 0; index--) {
    if (visibleEnd[index]! >= 0) {
      const parent = nodes[index]!.parent;
      visibleEnd[parent] = nodes[parent]!.tokens - 1;
    }
  }
  let uniqueVisibleTokens = 0;
  for (let index = 0; index < count; index++) uniqueVisibleTokens += visibleEnd[index]! + 1;
  let leaves = 0;
  for (let index = 0; index < count; index++) if (hasChild[index] === 0) leaves++;
  return {
    nodes: count,
    leaves,
    depth,
    treeTokens,
    queries: queries.length,
    uniqueVisibleTokens,
    pathTokens,
    kvBytesPerToken: kvBytesPerToken({
      numKvHeads: workload.kvHeads,
      headDim: workload.headDim,
      dtype: workload.dtype,
    }),
  };
}

/** One line describing a workload, e.g. `few-shot-b20: 21 nodes, 12000 tokens, 20 queries; 32×128 heads (8 KV), f16, page 16`. */
export function describeWorkload(workload: Workload, summary = summarizeWorkload(workload)): string {
  return (
    `${workload.name}: ${summary.nodes} nodes, ${summary.treeTokens} tokens, ${summary.queries} queries; ` +
    `${workload.heads} heads (${workload.kvHeads} KV) × ${workload.headDim}, ${workload.dtype}, page ${workload.pageSize}`
  );
}
