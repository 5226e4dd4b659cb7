import type { AttentionShape, PagedTreeView, TreeQueries } from '@deft/core';
import { buildPagedTree } from '@deft/testing';
import { workloadQueries } from './parse-workload.js';
import type { Workload } from './workload.js';
import { ensureTreeFits } from './workload-memory.js';

/** A workload laid out in pages, ready to plan and run. */
export interface BuiltWorkload {
  readonly workload: Workload;
  readonly view: PagedTreeView;
  /** Queries on view node ids (`nodeIds[nodeIndex]`), in the workload's query order. */
  readonly queries: TreeQueries;
  /** `[nodes]` the view's id of each workload node (ids are sparse and permuted by the seed). */
  readonly nodeIds: Int32Array;
  /** Slots of the KV store (`numPages × pageSize`). */
  readonly numSlots: number;
  /** `[treeTokens]` slot of every token in node order (all of node 0, then node 1, …). */
  readonly tokenSlots: Int32Array;
  readonly shape: AttentionShape;
}

/**
 * Lays a workload out as a paged tree (page order and node ids shuffled by the workload's seed, each
 * node starting on a fresh page) and its queries as typed arrays.
 *
 * @throws {CapacityError} before allocating when the tree's slots overflow 32-bit indices.
 * @example
 * ```ts
 * const built = buildWorkload(findBuiltinWorkload('sd-t64')!);
 * const plan = planTreeAttention(built.view, built.queries, { shape: built.shape });
 * ```
 */
export function buildWorkload(workload: Workload): BuiltWorkload {
  ensureTreeFits(workload);
  const { view, numSlots, nodeIds } = buildPagedTree(
    workload.nodes.map((node) => ({ parent: node.parent, tokens: node.tokens })),
    workload.pageSize,
    { seed: workload.seed },
  );
  const pairs = workloadQueries(workload);
  const queries: TreeQueries = {
    nodes: Int32Array.from(pairs, ([node]) => nodeIds[node]!),
    positions: Int32Array.from(pairs, ([, position]) => position),
  };
  let treeTokens = 0;
  for (const node of workload.nodes) treeTokens += node.tokens;
  const tokenSlots = new Int32Array(treeTokens);
  const { pageSize, pages, pageIndptr } = view;
  let cursor = 0;
  workload.nodes.forEach((node, index) => {
    const firstPage = pageIndptr[nodeIds[index]!]!;
    for (let token = 0; token < node.tokens; token++) {
      tokenSlots[cursor++] = pages[firstPage + Math.floor(token / pageSize)]! * pageSize + (token % pageSize);
    }
  });
  return {
    workload,
    view,
    queries,
    nodeIds,
    numSlots,
    tokenSlots,
    shape: {
      numHeads: workload.heads,
      numKvHeads: workload.kvHeads,
      headDim: workload.headDim,
      kvDtype: workload.dtype,
    },
  };
}
