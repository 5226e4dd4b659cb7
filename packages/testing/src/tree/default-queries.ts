import type { PagedTreeView, TreeQueries } from '@deft/core';

/**
 * One query per leaf that holds tokens, at its last token, in depth-first order: a decoding step of
 * every live sequence. Leaves with no tokens get no query (a query needs a token of its own node).
 *
 * @example
 * ```ts
 * const plan = planTreeAttention(view, defaultQueries(view), { shape });
 * ```
 */
export function defaultQueries(view: PagedTreeView): TreeQueries {
  const hasChild = new Uint8Array(view.parent.length);
  for (const node of view.order) {
    const parent = view.parent[node]!;
    if (parent !== -1) hasChild[parent] = 1;
  }
  const nodes: number[] = [];
  const positions: number[] = [];
  for (const node of view.order) {
    if (hasChild[node] === 0 && view.tokenCount[node]! > 0) {
      nodes.push(node);
      positions.push(view.tokenCount[node]! - 1);
    }
  }
  return { nodes: Int32Array.from(nodes), positions: Int32Array.from(positions) };
}
