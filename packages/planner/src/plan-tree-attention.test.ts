import type { PagedTreeView, TreeQueries } from '@deft/core';
import {
  type AttentionShape,
  InvalidArgumentError,
  NotFoundError,
  PLAN_STRATEGIES,
  type TreeAttentionPlan,
  validatePlan,
} from '@deft/core';
import { buildPagedTree, defaultQueries, randomTreeCase } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { planTreeAttention } from './plan-tree-attention.js';

const shape: AttentionShape = { numHeads: 8, numKvHeads: 2, headDim: 16, kvDtype: 'f16' };

function slotOf(view: PagedTreeView, node: number, token: number): number {
  const page = view.pages[view.pageIndptr[node]! + Math.floor(token / view.pageSize)]!;
  return page * view.pageSize + (token % view.pageSize);
}

/** The slots query `query` must see, root first. */
function pathSlots(view: PagedTreeView, queries: TreeQueries, query: number): number[] {
  const path: number[] = [];
  for (let node = queries.nodes[query]!; node !== -1; node = view.parent[node]!) path.push(node);
  const slots: number[] = [];
  for (const node of path.reverse()) {
    const end = node === queries.nodes[query] ? queries.positions[query]! + 1 : view.tokenCount[node]!;
    for (let token = 0; token < end; token++) slots.push(slotOf(view, node, token));
  }
  return slots;
}

/** The slots query `query` sees through the plan, in the order its partials list them. */
function plannedSlots(plan: TreeAttentionPlan, query: number, chunkOfPartial: Int32Array): number[] {
  const slots: number[] = [];
  for (let entry = plan.queryPartialIndptr[query]!; entry < plan.queryPartialIndptr[query + 1]!; entry++) {
    const slot = plan.queryPartials[entry]!;
    const chunk = chunkOfPartial[slot]!;
    const local = slot - plan.chunkQueryIndptr[chunk]!;
    const words = Math.ceil((plan.chunkQueryIndptr[chunk + 1]! - plan.chunkQueryIndptr[chunk]!) / 32);
    let seesAny = false;
    let seesAll = true;
    for (let token = plan.chunkTokenIndptr[chunk]!; token < plan.chunkTokenIndptr[chunk + 1]!; token++) {
      const word =
        plan.mask[plan.chunkMaskOffset[chunk]! + plan.tokenSegments[token]! * words + (local >>> 5)]!;
      if (((word >>> (local & 31)) & 1) === 1) {
        slots.push(plan.tokenSlots[token]!);
        seesAny = true;
      } else seesAll = false;
    }
    if (!seesAny) throw new Error(`query ${query} has a partial of chunk ${chunk} but sees none of it`);
    if (plan.chunkFullyVisible[chunk] === 1 && !seesAll)
      throw new Error(`chunk ${chunk} is not fully visible`);
  }
  return slots;
}

function sameMultiset(left: number[], right: number[]): boolean {
  if (left.length !== right.length) return false;
  const sortedLeft = Int32Array.from(left).sort();
  const sortedRight = Int32Array.from(right).sort();
  return sortedLeft.every((value, index) => value === sortedRight[index]);
}

function checkPlan(
  view: PagedTreeView,
  queries: TreeQueries,
  plan: TreeAttentionPlan,
  numSlots: number,
  chunkSize?: number,
): void {
  validatePlan(plan, { numSlots, pageSize: view.pageSize, numQueries: queries.nodes.length });
  const chunkOfPartial = new Int32Array(plan.numPartials);
  for (let chunk = 0; chunk < plan.numChunks; chunk++) {
    chunkOfPartial.fill(chunk, plan.chunkQueryIndptr[chunk]!, plan.chunkQueryIndptr[chunk + 1]!);
  }
  let pathTotal = 0;
  for (let query = 0; query < queries.nodes.length; query++) {
    const expected = pathSlots(view, queries, query);
    pathTotal += expected.length;
    if (!sameMultiset(plannedSlots(plan, query, chunkOfPartial), expected)) {
      throw new Error(`query ${query} does not see exactly its path`);
    }
  }
  // A fully visible flag is set whenever it could be.
  for (let chunk = 0; chunk < plan.numChunks; chunk++) {
    const words = Math.ceil((plan.chunkQueryIndptr[chunk + 1]! - plan.chunkQueryIndptr[chunk]!) / 32);
    const queryCount = plan.chunkQueryIndptr[chunk + 1]! - plan.chunkQueryIndptr[chunk]!;
    let all = true;
    for (let row = 0; row < plan.chunkSegmentCount[chunk]!; row++) {
      for (let bit = 0; bit < queryCount; bit++) {
        const word = plan.mask[plan.chunkMaskOffset[chunk]! + row * words + (bit >>> 5)]!;
        if (((word >>> (bit & 31)) & 1) === 0) all = false;
      }
    }
    if (plan.chunkFullyVisible[chunk] !== (all ? 1 : 0))
      throw new Error(`chunk ${chunk} has a wrong fully-visible flag`);
  }
  if (chunkSize !== undefined && plan.strategy !== 'deft-node') {
    for (let chunk = 0; chunk < plan.numChunks; chunk++) {
      if (plan.chunkTokenIndptr[chunk + 1]! - plan.chunkTokenIndptr[chunk]! > chunkSize) {
        throw new Error(`chunk ${chunk} is longer than chunkSize ${chunkSize}`);
      }
    }
  }
  if (plan.strategy === 'sequence') expect(plan.io.tokensRead).toBe(pathTotal);
  else expect(plan.io.tokensRead).toBe(plan.io.uniqueTokens);
  expect(plan.io.kvBytesRead).toBe(plan.io.tokensRead * 2 * shape.numKvHeads * shape.headDim * 2);
  expect(plan.io.partialBytes).toBe(2 * plan.numPartials * shape.numHeads * (shape.headDim + 1) * 4);
  expect(plan.io.maskBytes).toBe(plan.mask.byteLength);
}

describe('planTreeAttention', () => {
  it('plans a prefix with two leaves', () => {
    const { view, numSlots } = buildPagedTree(
      [
        { parent: -1, tokens: 40 },
        { parent: 0, tokens: 3 },
        { parent: 0, tokens: 17 },
      ],
      16,
    );
    const queries = defaultQueries(view);
    expect(Array.from(queries.nodes)).toEqual([1, 2]);
    for (const strategy of PLAN_STRATEGIES) {
      const plan = planTreeAttention(view, queries, { strategy, shape, chunkSize: 16 });
      checkPlan(view, queries, plan, numSlots);
    }
    const flat = planTreeAttention(view, queries, { shape });
    expect(flat.numChunks).toBe(2); // 60 tokens: auto size 32, page-aligned cut
    expect(flat.io.uniqueTokens).toBe(60);
    const sequence = planTreeAttention(view, queries, { strategy: 'sequence', shape });
    expect(sequence.io.tokensRead).toBe(43 + 57);
  });

  it('splits a causal node at its query positions', () => {
    const { view, numSlots } = buildPagedTree([{ parent: -1, tokens: 10 }], 4);
    const queries = { nodes: Int32Array.of(0, 0, 0), positions: Int32Array.of(6, 2, 6) };
    const plan = planTreeAttention(view, queries, { strategy: 'deft-node', shape });
    checkPlan(view, queries, plan, numSlots);
    expect(plan.numChunks).toBe(1);
    expect(plan.chunkSegmentCount[0]).toBe(2); // [0, 3) seen by all, [3, 7) by queries 0 and 2
    expect(plan.io.uniqueTokens).toBe(7);
    expect(Array.from(plan.mask)).toEqual([0b111, 0b101]);
    expect(plan.chunkFullyVisible[0]).toBe(0);
  });

  it('matches the path of every query on seeded random trees, for every strategy', () => {
    for (let seed = 0; seed < 72; seed++) {
      const testCase = randomTreeCase(seed);
      for (const strategy of PLAN_STRATEGIES) {
        for (const chunkSize of [undefined, 1, 7, 64]) {
          const plan = planTreeAttention(testCase.view, testCase.queries, {
            strategy,
            shape,
            ...(chunkSize === undefined ? {} : { chunkSize }),
          });
          try {
            checkPlan(testCase.view, testCase.queries, plan, testCase.numSlots, chunkSize);
          } catch (error) {
            throw new Error(`${testCase.description}, ${strategy}, chunkSize ${chunkSize}: ${String(error)}`);
          }
        }
      }
    }
  });

  it('cuts deft-flatten chunks near-equal and page-aligned', () => {
    const { view } = buildPagedTree(
      [{ parent: -1, tokens: 1000 }, ...Array.from({ length: 256 }, () => ({ parent: 0, tokens: 1 }))],
      16,
    );
    const wideShape = { ...shape, numKvHeads: 8, numHeads: 32, headDim: 128 };
    const plan = planTreeAttention(view, defaultQueries(view), {
      shape: wideShape,
      maxPartialRatio: Number.POSITIVE_INFINITY,
    });
    expect(plan.io.kvBytesRead).toBe(plan.io.uniqueKvBytes);
    // By default, a tree whose tokens are seen by 256 queries gets fewer, longer chunks to bound partial traffic.
    const bounded = planTreeAttention(view, defaultQueries(view), { shape: wideShape });
    expect(bounded.numChunks).toBeLessThan(plan.numChunks);
    expect(bounded.numChunks).toBeGreaterThan(1);
    expect(bounded.io.kvBytesRead).toBe(bounded.io.uniqueKvBytes);
    const sizes = Array.from(
      { length: plan.numChunks },
      (_, chunk) => plan.chunkTokenIndptr[chunk + 1]! - plan.chunkTokenIndptr[chunk]!,
    );
    expect(Math.min(...sizes.slice(0, -1))).toBeGreaterThanOrEqual(24);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(32);
    for (let chunk = 0; chunk < plan.numChunks; chunk++) {
      const first = plan.tokenSlots[plan.chunkTokenIndptr[chunk]!]!;
      if (plan.chunkTokenIndptr[chunk]! < 1000) expect(first % 16).toBe(0);
    }
  });

  it('is deterministic', () => {
    const testCase = randomTreeCase(5);
    const first = planTreeAttention(testCase.view, testCase.queries, { shape });
    const second = planTreeAttention(testCase.view, testCase.queries, { shape });
    expect(second).toEqual(first);
  });

  describe('rejects invalid input with typed errors', () => {
    const { view } = buildPagedTree(
      [
        { parent: -1, tokens: 5 },
        { parent: 0, tokens: 2 },
      ],
      4,
    );
    const queries = defaultQueries(view);
    const expectError = (
      run: () => unknown,
      type: { isInstance(value: unknown): boolean },
      argument: string,
    ): void => {
      try {
        run();
      } catch (error) {
        expect(type.isInstance(error), String(error)).toBe(true);
        expect((error as InvalidArgumentError).argument).toBe(argument);
        return;
      }
      throw new Error('expected an error');
    };

    it('queries', () => {
      expectError(
        () => planTreeAttention(view, { nodes: Int32Array.of(9), positions: Int32Array.of(0) }, { shape }),
        NotFoundError,
        'queries.nodes[0]',
      );
      expectError(
        () => planTreeAttention(view, { nodes: Int32Array.of(1), positions: Int32Array.of(2) }, { shape }),
        InvalidArgumentError,
        'queries.positions[0]',
      );
      expectError(
        () => planTreeAttention(view, { nodes: Int32Array.of(1), positions: Int32Array.of(-1) }, { shape }),
        InvalidArgumentError,
        'queries.positions[0]',
      );
      expectError(
        () => planTreeAttention(view, { nodes: Int32Array.of(1), positions: Int32Array.of() }, { shape }),
        InvalidArgumentError,
        'queries.positions',
      );
      expectError(
        () =>
          planTreeAttention(
            view,
            { nodes: [1] as unknown as Int32Array, positions: Int32Array.of(0) },
            { shape },
          ),
        InvalidArgumentError,
        'queries.nodes',
      );
    });

    it('views', () => {
      expectError(
        () => planTreeAttention({ ...view, order: Int32Array.of(1, 0) }, queries, { shape }),
        InvalidArgumentError,
        'view.order[0]',
      );
      expectError(
        () => planTreeAttention({ ...view, order: Int32Array.of(0, 0) }, queries, { shape }),
        InvalidArgumentError,
        'view.order[1]',
      );
      expectError(
        () => planTreeAttention({ ...view, pageSize: 0 }, queries, { shape }),
        InvalidArgumentError,
        'view.pageSize',
      );
      expectError(
        () => planTreeAttention({ ...view, tokenCount: Int32Array.of(9, 2) }, queries, { shape }),
        InvalidArgumentError,
        'view.pageIndptr[0]',
      );
      expectError(
        () => planTreeAttention({ ...view, tokenCount: Int32Array.of(5) }, queries, { shape }),
        InvalidArgumentError,
        'view.tokenCount',
      );
    });

    it('options', () => {
      expectError(
        () => planTreeAttention(view, queries, { shape, strategy: 'nope' as never }),
        InvalidArgumentError,
        'options.strategy',
      );
      expectError(
        () => planTreeAttention(view, queries, { shape, chunkSize: 0 }),
        InvalidArgumentError,
        'options.chunkSize',
      );
      expectError(
        () => planTreeAttention(view, queries, { shape, targetWorkUnits: 1.5 }),
        InvalidArgumentError,
        'options.targetWorkUnits',
      );
      expectError(
        () => planTreeAttention(view, queries, { shape: { ...shape, numKvHeads: 3 } }),
        InvalidArgumentError,
        'options.shape.numKvHeads',
      );
      expectError(
        () => planTreeAttention(view, queries, { shape: { ...shape, kvDtype: 'bf16' as never } }),
        InvalidArgumentError,
        'options.shape.kvDtype',
      );
      expectError(
        () => planTreeAttention(view, queries, undefined as never),
        InvalidArgumentError,
        'options',
      );
    });
  });

  it('plans zero queries as an empty plan', () => {
    const { view, numSlots } = buildPagedTree([{ parent: -1, tokens: 5 }], 4);
    const none = { nodes: new Int32Array(0), positions: new Int32Array(0) };
    for (const strategy of PLAN_STRATEGIES) {
      const plan = planTreeAttention(view, none, { strategy, shape });
      validatePlan(plan, { numSlots });
      expect(plan.numChunks).toBe(0);
      expect(plan.io.uniqueTokens).toBe(0);
    }
  });
});
