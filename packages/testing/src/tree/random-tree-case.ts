import type { PagedTreeView, TreeQueries } from '@deft/core';
import { buildPagedTree, type TreeNodeSpec } from './build-paged-tree.js';
import { SeededRandom } from './seeded-random.js';

/**
 * Shapes of random tree cases:
 * - `random`: a random tree of awkward node sizes (1 token, page size ± 1, empty leaves), leaves queried
 *   at their last token plus a few causal queries inside nodes;
 * - `deep-chain`: a chain of 50–250 tiny nodes with side branches;
 * - `speculative`: a prefix and a token tree of 1-token nodes, every token-tree node a query;
 * - `wide`: a prefix with 300 short (some empty) leaves and exactly 300 queries;
 * - `single-query`: a random tree with one query somewhere inside it;
 * - `causal`: multi-token nodes queried at several positions each (duplicates included).
 */
export type RandomTreeKind = 'random' | 'deep-chain' | 'speculative' | 'wide' | 'single-query' | 'causal';

/** Every {@link RandomTreeKind}, in a stable order. */
export const RANDOM_TREE_KINDS: readonly RandomTreeKind[] = [
  'random',
  'deep-chain',
  'speculative',
  'wide',
  'single-query',
  'causal',
];

/** Options of {@link randomTreeCase}. */
export interface RandomTreeCaseOptions {
  /** Tokens per page (default: picked from 1, 16, 16, 5 by the seed). */
  readonly pageSize?: number;
  /** Shape of the case (default: `RANDOM_TREE_KINDS[seed % 6]`). */
  readonly kind?: RandomTreeKind;
}

/** A random tree with its pages and queries. */
export interface RandomTreeCase {
  readonly view: PagedTreeView;
  readonly queries: TreeQueries;
  /** Slots a KV storage needs (`numPages × pageSize`). */
  readonly numSlots: number;
  readonly numPages: number;
  readonly pageSize: number;
  readonly kind: RandomTreeKind;
  /** The node specs the view was built from (`nodeIds[i]` is spec `i`'s id). */
  readonly nodes: readonly TreeNodeSpec[];
  readonly nodeIds: Int32Array;
  /** A one-line description for test names, e.g. `"seed 7: speculative, 120 nodes, 119 queries, pageSize 16"`. */
  readonly description: string;
}

function awkwardSize(random: SeededRandom, pageSize: number, maximum = 3 * pageSize + 40): number {
  const choice = random.pick([
    1,
    1,
    2,
    pageSize - 1,
    pageSize,
    pageSize + 1,
    2 * pageSize - 1,
    2 * pageSize + 1,
    random.integer(1, maximum),
  ]);
  return Math.max(1, choice);
}

/**
 * A seeded random tree case with the sizes that break planners: 1-token nodes, page boundaries ± 1,
 * deep chains, empty leaves, 1 and 300 queries, speculative token trees, causal multi-token nodes,
 * shuffled pages, sparse node ids and (for odd seeds) queries listed in shuffled order.
 *
 * @example
 * ```ts
 * const { view, queries, numSlots } = randomTreeCase(7, { pageSize: 16 });
 * const plan = planTreeAttention(view, queries, { shape });
 * ```
 */
export function randomTreeCase(seed: number, options: RandomTreeCaseOptions = {}): RandomTreeCase {
  const random = new SeededRandom(seed * 7919 + 17);
  const kind = options.kind ?? RANDOM_TREE_KINDS[Math.abs(Math.trunc(seed)) % RANDOM_TREE_KINDS.length]!;
  const pageSize = options.pageSize ?? random.pick([1, 16, 16, 5]);
  const nodes: TreeNodeSpec[] = [];
  const queryList: Array<[number, number]> = []; // [node index, position]
  const addNode = (parent: number, tokens: number): number => {
    nodes.push({ parent, tokens });
    return nodes.length - 1;
  };
  const leafQueries = (): void => {
    const hasChild = new Uint8Array(nodes.length);
    for (const node of nodes) if (node.parent !== -1) hasChild[node.parent] = 1;
    nodes.forEach((node, index) => {
      if (hasChild[index] === 0 && node.tokens > 0) queryList.push([index, node.tokens - 1]);
    });
  };
  const randomQuery = (): [number, number] => {
    for (;;) {
      const index = random.integer(0, nodes.length - 1);
      const tokens = nodes[index]!.tokens;
      if (tokens > 0) return [index, random.integer(0, tokens - 1)];
    }
  };
  const randomTree = (count: number): void => {
    addNode(-1, random.chance(0.5) ? random.integer(1, 200) : awkwardSize(random, pageSize));
    for (let index = 1; index < count; index++) {
      const parent = random.chance(0.3) ? index - 1 : random.integer(0, index - 1);
      addNode(parent, random.chance(0.1) ? 0 : awkwardSize(random, pageSize));
    }
  };

  switch (kind) {
    case 'random': {
      randomTree(random.integer(2, 40));
      leafQueries();
      const extra = random.integer(0, 5);
      for (let index = 0; index < extra; index++) queryList.push(randomQuery());
      break;
    }
    case 'deep-chain': {
      const depth = random.integer(50, 250);
      addNode(-1, awkwardSize(random, pageSize));
      for (let index = 1; index < depth; index++) {
        const branch = random.chance(0.05) && index > 2;
        addNode(
          branch ? random.integer(0, index - 2) : index - 1,
          random.chance(0.05) ? 0 : random.integer(1, 3),
        );
      }
      leafQueries();
      for (let index = random.integer(0, 3); index > 0; index--) queryList.push(randomQuery());
      break;
    }
    case 'speculative': {
      const prefix = addNode(-1, random.chance(0.5) ? random.integer(1, 300) : awkwardSize(random, pageSize));
      const size = random.integer(8, 300);
      for (let index = 0; index < size; index++) {
        const parent =
          index === 0 || random.chance(0.2)
            ? prefix
            : random.integer(Math.max(1, nodes.length - 8), nodes.length - 1);
        const node = addNode(parent, 1);
        queryList.push([node, 0]);
      }
      break;
    }
    case 'wide': {
      addNode(-1, random.integer(1, 100));
      for (let index = 0; index < 300; index++)
        addNode(0, random.chance(0.05) ? 0 : random.pick([1, 2, pageSize - 1, pageSize + 1, 3]) || 1);
      leafQueries();
      while (queryList.length < 300) queryList.push(randomQuery());
      break;
    }
    case 'single-query': {
      randomTree(random.integer(1, 30));
      queryList.push(randomQuery());
      break;
    }
    case 'causal': {
      randomTree(random.integer(1, 12));
      for (let index = 0; index < nodes.length; index++) {
        const tokens = nodes[index]!.tokens;
        if (tokens === 0) continue;
        const count = random.integer(1, 5);
        for (let query = 0; query < count; query++) {
          queryList.push([index, random.pick([0, tokens - 1, random.integer(0, tokens - 1)])]);
        }
      }
      if (random.chance(0.5)) {
        const first = queryList[0]!;
        queryList.push([first[0], first[1]]); // a duplicate query
      }
      break;
    }
  }
  if (queryList.length === 0) queryList.push(randomQuery());
  if (seed % 2 === 1) random.shuffle(queryList);

  const { view, numSlots, numPages, nodeIds } = buildPagedTree(nodes, pageSize, { seed: seed + 1 });
  const queries: TreeQueries = {
    nodes: Int32Array.from(queryList, ([index]) => nodeIds[index]!),
    positions: Int32Array.from(queryList, ([, position]) => position),
  };
  return {
    view,
    queries,
    numSlots,
    numPages,
    pageSize,
    kind,
    nodes,
    nodeIds,
    description: `seed ${seed}: ${kind}, ${nodes.length} nodes, ${queryList.length} queries, pageSize ${pageSize}`,
  };
}
