import type { AttentionShape, PagedTreeView, TreeAttentionPlan, TreeQueries } from '@deft/core';
import { CapacityError } from '@deft/core';
import { buildPagedTree, defaultQueries } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { MAX_PLAN_INDEX } from './plan-memory.js';
import { planTreeAttention } from './plan-tree-attention.js';

const shape: AttentionShape = { numHeads: 8, numKvHeads: 2, headDim: 16, kvDtype: 'f16' };

/** A view over plain arrays: `parents[i]` and `tokens[i]` per node, node `i` on pages `pages[i]`. */
function view(
  pageSize: number,
  parents: readonly number[],
  tokens: readonly number[],
  pages: readonly (readonly number[])[],
): PagedTreeView {
  const pageIndptr = new Int32Array(parents.length + 1);
  pages.forEach((list, node) => {
    pageIndptr[node + 1] = pageIndptr[node]! + list.length;
  });
  return {
    pageSize,
    parent: Int32Array.from(parents),
    tokenCount: Int32Array.from(tokens),
    pageIndptr,
    pages: Int32Array.from(pages.flat()),
    order: Int32Array.from(parents, (_, node) => node),
  };
}

/** A root of `rootTokens` tokens (chunked one token each) under `leaves` one-token leaves: every leaf sees it all. */
function wideTree(rootTokens: number, leaves: number): { view: PagedTreeView; queries: TreeQueries } {
  const parents = [-1, ...Array.from({ length: leaves }, () => 0)];
  const tokens = [rootTokens, ...Array.from({ length: leaves }, () => 1)];
  const rootPages = Math.ceil(rootTokens / 16);
  const pages = [
    Array.from({ length: rootPages }, (_, page) => page),
    ...Array.from({ length: leaves }, (_, leaf) => [rootPages + leaf]),
  ];
  const nodes = Int32Array.from({ length: leaves }, (_, leaf) => leaf + 1);
  return { view: view(16, parents, tokens, pages), queries: { nodes, positions: new Int32Array(leaves) } };
}

function caught(work: () => unknown): Error {
  const started = performance.now();
  try {
    work();
  } catch (error) {
    // Refused from arithmetic on the view, before any scratch is allocated.
    expect(performance.now() - started).toBeLessThan(1000);
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('planner memory guard', () => {
  it('refuses more visible tokens than 32-bit plan indices hold, naming the count and the limit', () => {
    // Three nodes of 2^31 - 1 tokens each, all on page 0: about 6.4e9 visible tokens.
    const big = 2 ** 31 - 1;
    const chain = view(big, [-1, 0, 1], [big, big, big], [[0], [0], [0]]);
    const queries = { nodes: Int32Array.of(2), positions: Int32Array.of(big - 1) };
    for (const strategy of ['deft-flatten', 'sequence'] as const) {
      const error = caught(() => planTreeAttention(chain, queries, { shape, strategy }));
      expect(CapacityError.isInstance(error), String(error)).toBe(true);
      expect(error.message).toContain(`${3 * big} visible tokens`);
      expect(error.message).toContain(`limit of ${MAX_PLAN_INDEX}`);
    }
  });

  it('refuses a plan whose partial states overflow 32-bit indices, before filling any array', () => {
    // 2^15 one-token chunks, each seen by 2^16 leaves: 2^31 + 2^16 partial states.
    const { view: wide, queries } = wideTree(2 ** 15, 2 ** 16);
    const error = caught(() => planTreeAttention(wide, queries, { shape, chunkSize: 1 }));
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    expect(error.message).toContain(`${2 ** 31 + 2 ** 16} partial states`);
    expect(error.message).toContain(`limit of ${MAX_PLAN_INDEX}`);
  });

  it('refuses a sequence plan whose summed paths overflow 32-bit indices', () => {
    const { view: wide, queries } = wideTree(2 ** 15, 2 ** 16);
    const error = caught(() => planTreeAttention(wide, queries, { shape, strategy: 'sequence' }));
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    expect(error.message).toContain(`${2 ** 16 * (2 ** 15 + 1)} tokens`);
  });

  it('refuses pages whose slots overflow 32-bit slot indices', () => {
    const pageSize = 2 ** 20;
    const slotted = view(pageSize, [-1], [4], [[2 ** 11]]); // slots from 2^31 on
    const queries = { nodes: Int32Array.of(0), positions: Int32Array.of(3) };
    const error = caught(() => planTreeAttention(slotted, queries, { shape }));
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    expect(error.message).toContain(`slot ${2 ** 31 + pageSize - 1}`);
    expect(error.message).toContain(`limit of ${MAX_PLAN_INDEX}`);
    // The last page that fits is accepted.
    const fits = view(pageSize, [-1], [4], [[2 ** 11 - 1]]);
    expect(planTreeAttention(fits, queries, { shape }).tokenSlots[0]).toBe((2 ** 11 - 1) * pageSize);
  });

  it('refuses a plan above hostMemoryBudgetBytes with the estimate and the budget, and plans it within', () => {
    const { view: tree } = buildPagedTree(
      [
        { parent: -1, tokens: 400 },
        { parent: 0, tokens: 30 },
        { parent: 0, tokens: 50 },
        { parent: 1, tokens: 7 },
      ],
      16,
      { seed: 3 },
    );
    const queries = defaultQueries(tree);
    for (const strategy of ['deft-flatten', 'deft-node', 'deft-node-chunk', 'sequence'] as const) {
      const error = caught(() =>
        planTreeAttention(tree, queries, { shape, strategy, hostMemoryBudgetBytes: 1000 }),
      );
      expect(CapacityError.isInstance(error), String(error)).toBe(true);
      expect(error.message).toMatch(
        /needs about \d+ bytes .*above options\.hostMemoryBudgetBytes \(1000 bytes\)/,
      );
      // Each refusal names what is known so far (scratch first, then the partial lists); a budget of the
      // last estimate plans, and one byte less does not.
      let needed = Number(/needs about (\d+) bytes/.exec(error.message)![1]);
      let plan: TreeAttentionPlan | undefined;
      for (let attempt = 0; attempt < 3 && plan === undefined; attempt++) {
        try {
          plan = planTreeAttention(tree, queries, { shape, strategy, hostMemoryBudgetBytes: needed });
        } catch (again) {
          expect(CapacityError.isInstance(again), String(again)).toBe(true);
          const next = Number(/needs about (\d+) bytes/.exec((again as Error).message)![1]);
          expect(next).toBeGreaterThan(needed);
          needed = next;
        }
      }
      expect(plan?.numQueries).toBe(queries.nodes.length);
      expect(() =>
        planTreeAttention(tree, queries, { shape, strategy, hostMemoryBudgetBytes: needed - 1 }),
      ).toThrow(CapacityError);
      // The estimate covers at least the plan's own arrays.
      expect(needed).toBeGreaterThanOrEqual(plan!.io.indexBytes + plan!.io.maskBytes);
    }
  });

  it('rejects a hostMemoryBudgetBytes that is not a positive number', () => {
    const { view: tree } = buildPagedTree([{ parent: -1, tokens: 4 }], 16, { seed: 1 });
    for (const budget of [0, -1, Number.NaN, '1e6'] as unknown[]) {
      expect(() =>
        planTreeAttention(tree, defaultQueries(tree), { shape, hostMemoryBudgetBytes: budget as number }),
      ).toThrow(/options\.hostMemoryBudgetBytes must be a number > 0/);
    }
  });
});
