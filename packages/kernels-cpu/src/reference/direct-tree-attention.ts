import type { PagedTreeView, TreeQueries } from '@deft/core';
import { InvalidArgumentError } from '@deft/core';

/** The parts of a {@link PagedTreeView} the reference reads (it needs no depth-first order). */
export type ReferenceTreeView = Pick<
  PagedTreeView,
  'pageSize' | 'parent' | 'tokenCount' | 'pageIndptr' | 'pages'
>;

/** Arguments of {@link directTreeAttention}. */
export interface DirectTreeAttentionArgs {
  readonly view: ReferenceTreeView;
  readonly queries: TreeQueries;
  /** `[numQueries, numHeads, headDim]` f32 queries. */
  readonly q: Float32Array;
  /** `[numSlots, numKvHeads, headDim]` f32 keys (a slot is `page * pageSize + offset`). */
  readonly k: Float32Array;
  /** `[numSlots, numKvHeads, headDim]` f32 values. */
  readonly v: Float32Array;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Softmax scale applied to `q · k`. */
  readonly scale: number;
}

function invalid(argument: string, message: string, expected: unknown, actual: unknown): never {
  throw new InvalidArgumentError(`${argument} ${message}`, { argument, expected, actual });
}

/**
 * Tree attention computed the obvious way, without a plan: for each query, walk its root-to-query path
 * (every token of its node's ancestors, then tokens `0 ..= position` of its node) and take one softmax
 * over it, in float64. Query head `h` reads KV head `floor(h / (numHeads / numKvHeads))`. This is the
 * oracle every plan and backend is checked against; it is slow on purpose (simple enough to trust).
 *
 * @returns `[numQueries, numHeads, headDim]` f32 attention outputs.
 * @throws InvalidArgumentError for mismatched array sizes, a query outside its node, a slot outside `k`/`v`,
 * or a parent chain that does not reach a root.
 * @example
 * ```ts
 * const expected = directTreeAttention({ view, queries, q, k, v, numHeads: 8, numKvHeads: 2, headDim: 64, scale: 1 / 8 });
 * ```
 */
export function directTreeAttention(args: DirectTreeAttentionArgs): Float32Array {
  const { view, queries, q, k, v, numHeads, numKvHeads, headDim, scale } = args;
  for (const [name, value] of [
    ['numHeads', numHeads],
    ['numKvHeads', numKvHeads],
    ['headDim', headDim],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) invalid(name, 'must be an integer >= 1', '>= 1', value);
  }
  if (numHeads % numKvHeads !== 0)
    invalid('numKvHeads', `must divide numHeads (${numHeads})`, `a divisor of ${numHeads}`, numKvHeads);
  if (!Number.isFinite(scale)) invalid('scale', 'must be a finite number', 'finite number', scale);
  const numQueries = queries.nodes.length;
  if (queries.positions.length !== numQueries)
    invalid('queries.positions', `must have length ${numQueries}`, numQueries, queries.positions.length);
  if (q.length !== numQueries * numHeads * headDim) {
    invalid(
      'q',
      `must hold [numQueries=${numQueries}, ${numHeads}, ${headDim}] values`,
      numQueries * numHeads * headDim,
      q.length,
    );
  }
  const rowSize = numKvHeads * headDim;
  if (k.length % rowSize !== 0 || v.length !== k.length) {
    invalid(
      'k',
      `and v must both be [numSlots, ${numKvHeads}, ${headDim}]`,
      `a multiple of ${rowSize}`,
      k.length,
    );
  }
  const numSlots = k.length / rowSize;
  const { pageSize, parent, tokenCount, pageIndptr, pages } = view;
  const groupSize = numHeads / numKvHeads;
  const output = new Float32Array(numQueries * numHeads * headDim);
  const accumulator = new Float64Array(headDim);

  for (let query = 0; query < numQueries; query++) {
    const node = queries.nodes[query]!;
    const position = queries.positions[query]!;
    if (!(node >= 0 && node < parent.length))
      invalid(`queries.nodes[${query}]`, 'must be a node of the view', `< ${parent.length}`, node);
    if (!(position >= 0 && position < tokenCount[node]!)) {
      invalid(
        `queries.positions[${query}]`,
        `must be a token of node ${node}`,
        `< ${tokenCount[node]}`,
        position,
      );
    }
    // The path, root first.
    const path: number[] = [];
    for (let current = node; current !== -1; current = parent[current]!) {
      if (path.length > parent.length || current < -1 || current >= parent.length) {
        invalid('view.parent', `must lead from node ${node} to a root`, 'a tree', current);
      }
      path.push(current);
    }
    path.reverse();
    const slots: number[] = [];
    for (const pathNode of path) {
      const end = pathNode === node ? position + 1 : tokenCount[pathNode]!;
      for (let token = 0; token < end; token++) {
        const slot =
          pages[pageIndptr[pathNode]! + Math.floor(token / pageSize)]! * pageSize + (token % pageSize);
        if (!(slot >= 0 && slot < numSlots))
          invalid('view.pages', `gives a slot outside k and v (${numSlots} slots)`, `< ${numSlots}`, slot);
        slots.push(slot);
      }
    }
    for (let head = 0; head < numHeads; head++) {
      const kvHead = Math.floor(head / groupSize);
      const queryBase = (query * numHeads + head) * headDim;
      const scores = slots.map((slot) => {
        const keyBase = (slot * numKvHeads + kvHead) * headDim;
        let dot = 0;
        for (let dimension = 0; dimension < headDim; dimension++)
          dot += q[queryBase + dimension]! * k[keyBase + dimension]!;
        return dot * scale;
      });
      let maximum = Number.NEGATIVE_INFINITY;
      for (const score of scores) if (score > maximum || Number.isNaN(score)) maximum = score;
      accumulator.fill(0);
      let total = 0;
      slots.forEach((slot, index) => {
        const weight = Math.exp(scores[index]! - maximum);
        total += weight;
        const valueBase = (slot * numKvHeads + kvHead) * headDim;
        for (let dimension = 0; dimension < headDim; dimension++)
          accumulator[dimension]! += weight * v[valueBase + dimension]!;
      });
      for (let dimension = 0; dimension < headDim; dimension++)
        output[queryBase + dimension] = accumulator[dimension]! / total;
    }
  }
  return output;
}
