import type { PagedTreeView } from '@deft/core';
import { InvalidArgumentError } from '@deft/core';
import { SeededRandom } from './seeded-random.js';

/** One node of a tree described by index: `parent` is the index of an earlier node, or `-1` for a root. */
export interface TreeNodeSpec {
  readonly parent: number;
  readonly tokens: number;
}

/** Options of {@link buildPagedTree}. */
export interface BuildPagedTreeOptions {
  /**
   * With a seed, page ids are shuffled (a node's pages are not contiguous), a few spare pages are left
   * unused, and node ids are sparse and permuted (absent ids hold junk the planner must ignore).
   * Without one, node `i` has id `i` and pages are allocated in order.
   */
  readonly seed?: number;
}

/** What {@link buildPagedTree} returns. */
export interface PagedTree {
  readonly view: PagedTreeView;
  /** `numPages × pageSize`: slots a KV storage needs to hold every page of the view. */
  readonly numSlots: number;
  readonly numPages: number;
  /** `[nodes.length]` the id of each node spec in the view. */
  readonly nodeIds: Int32Array;
}

/**
 * Lays out a tree given by node specs as a {@link PagedTreeView}: every node starts on a fresh page,
 * `ceil(tokens / pageSize)` pages each, `order` a depth-first pre-order with children in spec order.
 *
 * @param nodes Node specs, parents before children.
 * @throws InvalidArgumentError if a parent is not an earlier node, a token count is not an integer >= 0,
 * or `pageSize` is not an integer >= 1.
 * @example
 * ```ts
 * const { view, numSlots } = buildPagedTree([{ parent: -1, tokens: 40 }, { parent: 0, tokens: 3 }], 16, { seed: 1 });
 * ```
 */
export function buildPagedTree(
  nodes: readonly TreeNodeSpec[],
  pageSize: number,
  options: BuildPagedTreeOptions = {},
): PagedTree {
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    throw new InvalidArgumentError('pageSize must be an integer >= 1', {
      argument: 'pageSize',
      expected: '>= 1',
      actual: pageSize,
    });
  }
  const numNodes = nodes.length;
  for (let index = 0; index < numNodes; index++) {
    const { parent, tokens } = nodes[index]!;
    if (!Number.isInteger(parent) || parent < -1 || parent >= index) {
      throw new InvalidArgumentError(`nodes[${index}].parent must be -1 or the index of an earlier node`, {
        argument: `nodes[${index}].parent`,
        expected: `-1 <= parent < ${index}`,
        actual: parent,
      });
    }
    if (!Number.isInteger(tokens) || tokens < 0) {
      throw new InvalidArgumentError(`nodes[${index}].tokens must be an integer >= 0`, {
        argument: `nodes[${index}].tokens`,
        expected: '>= 0',
        actual: tokens,
      });
    }
  }
  const random = options.seed === undefined ? undefined : new SeededRandom(options.seed);

  // Node ids: identity, or a sparse permutation.
  const numIds = random === undefined ? numNodes : numNodes + random.integer(0, Math.ceil(numNodes / 3) + 1);
  const idPool = new Int32Array(numIds);
  for (let id = 0; id < numIds; id++) idPool[id] = id;
  if (random !== undefined) random.shuffle(idPool);
  const nodeIds = idPool.slice(0, numNodes);

  // Pages: one run per node, shuffled when seeded.
  let usedPages = 0;
  for (const node of nodes) usedPages += Math.ceil(node.tokens / pageSize);
  const numPages = usedPages + (random === undefined ? 0 : random.integer(0, 3));
  const pagePool = new Int32Array(numPages);
  for (let page = 0; page < numPages; page++) pagePool[page] = page;
  if (random !== undefined) random.shuffle(pagePool);

  const parent = new Int32Array(numIds).fill(-7); // junk for absent ids
  const tokenCount = new Int32Array(numIds).fill(5);
  const pageIndptr = new Int32Array(numIds + 1);
  const pages = new Int32Array(usedPages);
  const pagesPerId = new Int32Array(numIds);
  for (let index = 0; index < numNodes; index++) {
    const id = nodeIds[index]!;
    const spec = nodes[index]!;
    parent[id] = spec.parent === -1 ? -1 : nodeIds[spec.parent]!;
    tokenCount[id] = spec.tokens;
    pagesPerId[id] = Math.ceil(spec.tokens / pageSize);
  }
  for (let id = 0; id < numIds; id++) pageIndptr[id + 1] = pageIndptr[id]! + pagesPerId[id]!;
  for (let id = 0; id < numIds; id++)
    pages.set(pagePool.subarray(pageIndptr[id]!, pageIndptr[id + 1]!), pageIndptr[id]!);

  // Depth-first pre-order, children in spec order.
  const childStart = new Int32Array(numNodes + 1);
  for (const node of nodes) if (node.parent !== -1) childStart[node.parent + 1]!++;
  for (let index = 0; index < numNodes; index++) childStart[index + 1]! += childStart[index]!;
  const children = new Int32Array(Math.max(0, childStart[numNodes]!));
  const childCursor = childStart.slice(0, numNodes);
  for (let index = 0; index < numNodes; index++) {
    const parentIndex = nodes[index]!.parent;
    if (parentIndex !== -1) children[childCursor[parentIndex]!++] = index;
  }
  const order = new Int32Array(numNodes);
  const stack: number[] = [];
  let written = 0;
  for (let index = numNodes - 1; index >= 0; index--) if (nodes[index]!.parent === -1) stack.push(index);
  while (stack.length > 0) {
    const index = stack.pop()!;
    order[written++] = nodeIds[index]!;
    for (let child = childStart[index + 1]! - 1; child >= childStart[index]!; child--)
      stack.push(children[child]!);
  }

  return {
    view: { pageSize, parent, tokenCount, pageIndptr, pages, order },
    numSlots: numPages * pageSize,
    numPages,
    nodeIds,
  };
}
