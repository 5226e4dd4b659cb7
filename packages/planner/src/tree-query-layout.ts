import type { PagedTreeView, TreeQueries } from '@deft/core';
import { CapacityError, InvalidArgumentError, NotFoundError } from '@deft/core';
import { MAX_PLAN_INDEX } from './plan-memory.js';

/**
 * The planner's index of a tree and its queries, built in time linear in the tree and the queries.
 *
 * Queries are given *ranks* in an order where every subtree's queries are contiguous: nodes in
 * post-order (descendants first), and inside a node its own queries by position, descending
 * (ties by query index). Then the queries that see a segment `[start, end)` of node `n` are exactly
 * the ranks `[subtreeRankStart[n], ownRankStart[n] + k)`, with `k` the number of `n`'s own queries at
 * positions `>= end - 1`: a contiguous interval. Intervals of segments taken in depth-first order are
 * laminar (each is nested in an earlier one or lies after all earlier ones), which makes unions cheap.
 */
export interface TreeQueryLayout {
  readonly numQueries: number;
  /** `[numIds]` 1 for ids listed in `view.order`. */
  readonly present: Uint8Array;
  /** `[numIds]` first rank of the queries in the node's subtree. */
  readonly subtreeRankStart: Int32Array;
  /** `[numIds]` first rank of the node's own queries (= end of its descendants' ranks). */
  readonly ownRankStart: Int32Array;
  /** `[numIds]` end of the node's own ranks (= end of its subtree's ranks). */
  readonly ownRankEnd: Int32Array;
  /** `[numIds]` tokens of the node seen by at least one query (a prefix of the node). */
  readonly visibleCount: Int32Array;
  /** `[numQueries]` query index of each rank. */
  readonly rankToQuery: Int32Array;
  /** `[numQueries]` position (inside its node) of the query of each rank. */
  readonly rankPosition: Int32Array;
  /** True when `rankToQuery` is ascending, so rank order is query-index order. */
  readonly ranksAscending: boolean;
  /** Σ `visibleCount`: tokens visible to at least one query. */
  readonly uniqueTokens: number;
  /** Σ over visible tokens of the number of queries that see the token (the size of the visibility relation). */
  readonly visibilityPairs: number;
}

function invalid(argument: string, message: string, expected: unknown, actual: unknown): never {
  throw new InvalidArgumentError(`${argument} ${message}`, { argument, expected, actual });
}

function checkInt32Array(argument: string, value: unknown, length?: number): Int32Array {
  if (!(value instanceof Int32Array)) invalid(argument, 'must be an Int32Array', 'Int32Array', value);
  if (length !== undefined && value.length !== length) {
    invalid(
      argument,
      `must have length ${length}; build the view with the same number of ids in every array`,
      length,
      value.length,
    );
  }
  return value;
}

/**
 * Validates a paged tree view and its queries and builds the {@link TreeQueryLayout}.
 *
 * @throws InvalidArgumentError when an array has the wrong type or length, `order` is not a depth-first
 * pre-order of present nodes, a node has too few pages, or a query position is out of range.
 * @throws NotFoundError when a query names a node that is not in `view.order`.
 * @throws CapacityError when a page's slots (`page * pageSize + offset`) do not fit 32-bit slot indices.
 */
export function buildTreeQueryLayout(view: PagedTreeView, queries: TreeQueries): TreeQueryLayout {
  if (typeof view !== 'object' || view === null) invalid('view', 'must be a PagedTreeView', 'object', view);
  if (typeof queries !== 'object' || queries === null)
    invalid('queries', 'must be a TreeQueries', 'object', queries);
  const { pageSize } = view;
  if (!Number.isInteger(pageSize) || pageSize < 1)
    invalid('view.pageSize', 'must be an integer >= 1', '>= 1', pageSize);
  const parent = checkInt32Array('view.parent', view.parent);
  const numIds = parent.length;
  const tokenCount = checkInt32Array('view.tokenCount', view.tokenCount, numIds);
  const pageIndptr = checkInt32Array('view.pageIndptr', view.pageIndptr, numIds + 1);
  const pages = checkInt32Array('view.pages', view.pages);
  const order = checkInt32Array('view.order', view.order);
  const queryNodes = checkInt32Array('queries.nodes', queries.nodes);
  const queryPositions = checkInt32Array('queries.positions', queries.positions, queryNodes.length);
  const numQueries = queryNodes.length;
  // Slots are 32-bit: every slot of a listed page, up to `(page + 1) * pageSize - 1`, must fit.
  const maxPage = Math.floor((MAX_PLAN_INDEX + 1) / pageSize) - 1;

  // Present nodes: depth-first pre-order check with an explicit stack of open ancestors.
  const present = new Uint8Array(numIds);
  const stack = new Int32Array(order.length);
  let depth = 0;
  for (let index = 0; index < order.length; index++) {
    const node = order[index]!;
    if (node < 0 || node >= numIds || present[node] === 1) {
      invalid(
        `view.order[${index}]`,
        'must be a distinct node id below parent.length',
        `0 <= id < ${numIds}`,
        node,
      );
    }
    const parentId = parent[node]!;
    while (depth > 0 && stack[depth - 1] !== parentId) depth--;
    if (parentId !== -1 && depth === 0) {
      invalid(
        `view.order[${index}]`,
        `lists node ${node} outside the subtree of its parent ${parentId}; order must be a depth-first pre-order`,
        'depth-first pre-order',
        node,
      );
    }
    stack[depth++] = node;
    present[node] = 1;
    const tokens = tokenCount[node]!;
    if (tokens < 0) invalid(`view.tokenCount[${node}]`, 'must be >= 0', '>= 0', tokens);
    const start = pageIndptr[node]!;
    const end = pageIndptr[node + 1]!;
    if (start < 0 || end > pages.length || end - start < Math.ceil(tokens / pageSize)) {
      invalid(
        `view.pageIndptr[${node}]`,
        `must give node ${node} at least ${Math.ceil(tokens / pageSize)} pages inside view.pages`,
        Math.ceil(tokens / pageSize),
        end - start,
      );
    }
    for (let page = start; page < end; page++) {
      if (pages[page]! < 0) invalid(`view.pages[${page}]`, 'must be a page index >= 0', '>= 0', pages[page]);
      if (pages[page]! > maxPage) {
        const lastSlot = (pages[page]! + 1) * pageSize - 1;
        throw new CapacityError(
          `view.pages[${page}] = ${pages[page]} reaches slot ${lastSlot} (pages of ${pageSize} tokens), above the ` +
            `limit of ${MAX_PLAN_INDEX} of 32-bit slot indices; use a pool of at most ${maxPage + 1} pages of this size`,
          { argument: `view.pages[${page}]`, expected: `<= ${maxPage}`, actual: pages[page] },
        );
      }
    }
  }

  // Own queries per node.
  const ownRankStart = new Int32Array(numIds);
  const ownRankEnd = new Int32Array(numIds);
  for (let query = 0; query < numQueries; query++) {
    const node = queryNodes[query]!;
    if (node < 0 || node >= numIds || present[node] !== 1) {
      throw new NotFoundError(
        `queries.nodes[${query}] names node ${node}, which is not in the tree view; query live nodes only`,
        {
          argument: `queries.nodes[${query}]`,
          expected: 'a node id listed in view.order',
          actual: node,
        },
      );
    }
    const position = queryPositions[query]!;
    if (position < 0 || position >= tokenCount[node]!) {
      invalid(
        `queries.positions[${query}]`,
        `must be a token of node ${node} (0 <= position < ${tokenCount[node]})`,
        `0 <= position < ${tokenCount[node]}`,
        position,
      );
    }
    ownRankEnd[node]!++; // count for now
  }

  // Ranks: post-order of nodes, a node's own queries after its descendants'.
  const subtreeRankStart = new Int32Array(numIds);
  let rank = 0;
  depth = 0;
  const closeNode = (node: number): void => {
    const count = ownRankEnd[node]!;
    ownRankStart[node] = rank;
    rank += count;
    ownRankEnd[node] = rank;
  };
  for (let index = 0; index < order.length; index++) {
    const node = order[index]!;
    const parentId = parent[node]!;
    while (depth > 0 && stack[depth - 1] !== parentId) closeNode(stack[--depth]!);
    subtreeRankStart[node] = rank;
    stack[depth++] = node;
  }
  while (depth > 0) closeNode(stack[--depth]!);

  const rankToQuery = new Int32Array(numQueries);
  const rankPosition = new Int32Array(numQueries);
  const cursor = ownRankStart.slice();
  for (let query = 0; query < numQueries; query++) rankToQuery[cursor[queryNodes[query]!]!++] = query;
  let ranksAscending = true;
  for (let index = 0; index < order.length; index++) {
    const node = order[index]!;
    const start = ownRankStart[node]!;
    const end = ownRankEnd[node]!;
    if (end - start > 1) sortByPositionDescending(rankToQuery, start, end, queryPositions);
    for (let entry = start; entry < end; entry++) rankPosition[entry] = queryPositions[rankToQuery[entry]!]!;
  }
  for (let entry = 1; entry < numQueries; entry++) {
    if (rankToQuery[entry]! < rankToQuery[entry - 1]!) {
      ranksAscending = false;
      break;
    }
  }

  const visibleCount = new Int32Array(numIds);
  let uniqueTokens = 0;
  let visibilityPairs = 0;
  for (let query = 0; query < numQueries; query++) visibilityPairs += queryPositions[query]! + 1;
  for (let index = 0; index < order.length; index++) {
    const node = order[index]!;
    let visible = 0;
    const descendantQueries = ownRankStart[node]! - subtreeRankStart[node]!;
    if (descendantQueries > 0) {
      visible = tokenCount[node]!;
      visibilityPairs += descendantQueries * visible;
    } else if (ownRankEnd[node]! > ownRankStart[node]!) visible = rankPosition[ownRankStart[node]!]! + 1;
    visibleCount[node] = visible;
    uniqueTokens += visible;
  }

  return {
    numQueries,
    present,
    subtreeRankStart,
    ownRankStart,
    ownRankEnd,
    visibleCount,
    rankToQuery,
    rankPosition,
    ranksAscending,
    uniqueTokens,
    visibilityPairs,
  };
}

/** Sorts `queries[start..end)` by position descending, ties by query index ascending (stable, deterministic). */
function sortByPositionDescending(
  queries: Int32Array,
  start: number,
  end: number,
  positions: Int32Array,
): void {
  if (end - start <= 32) {
    for (let index = start + 1; index < end; index++) {
      const query = queries[index]!;
      const position = positions[query]!;
      let target = index - 1;
      while (target >= start && positions[queries[target]!]! < position) {
        queries[target + 1] = queries[target]!;
        target--;
      }
      queries[target + 1] = query;
    }
    return;
  }
  const sorted = Array.from(queries.subarray(start, end)).sort(
    (left, right) => positions[right]! - positions[left]! || left - right,
  );
  queries.set(sorted, start);
}
