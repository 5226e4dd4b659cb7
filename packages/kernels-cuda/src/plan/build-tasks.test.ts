import type { AttentionShape } from '@deft/core';
import { validatePlan } from '@deft/core';
import { directTreeAttention } from '@deft/kernels-cpu/reference';
import { planTreeAttention } from '@deft/planner';
import {
  buildPagedTree,
  defaultQueries,
  RANDOM_TREE_KINDS,
  randomTreeCase,
  relativeError,
  seededRandom,
} from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { emulateTaskSchedule } from '../../test/emulate-tasks.js';
import { buildTaskSchedule, TASK_FIELDS, TASK_MAX_ROWS, TASK_ROW_FIELDS } from './build-tasks.js';
import { packTaskSchedule } from './pack-schedule.js';

const SHAPES: readonly AttentionShape[] = [
  { numHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f32' },
  { numHeads: 3, numKvHeads: 1, headDim: 4, kvDtype: 'f32' },
];

describe('buildTaskSchedule', () => {
  for (let seed = 0; seed < 36; seed++) {
    const testCase = randomTreeCase(seed, { kind: RANDOM_TREE_KINDS[seed % RANDOM_TREE_KINDS.length]! });
    const shape = SHAPES[seed % SHAPES.length]!;
    for (const strategy of ['deft-flatten', 'deft-node', 'deft-node-chunk', 'sequence'] as const) {
      it(`computes the reference on ${testCase.description} (${strategy}, group ${shape.numHeads / shape.numKvHeads})`, () => {
        const plan = planTreeAttention(testCase.view, testCase.queries, {
          strategy,
          shape,
          chunkSize: 1 + (seed % 5) * 7,
        });
        validatePlan(plan);
        const random = seededRandom(seed * 31 + strategy.length);
        const numQueries = testCase.queries.nodes.length;
        const q = Float32Array.from(
          { length: numQueries * shape.numHeads * shape.headDim },
          () => random() * 4 - 2,
        );
        const rowLength = shape.numKvHeads * shape.headDim;
        const k = Float32Array.from({ length: testCase.numSlots * rowLength }, () => random() * 2 - 1);
        const v = Float32Array.from({ length: testCase.numSlots * rowLength }, () => random() * 2 - 1);
        const scale = 1 / Math.sqrt(shape.headDim);
        const expected = directTreeAttention({
          view: testCase.view,
          queries: testCase.queries,
          q,
          k,
          v,
          ...shape,
          scale,
        });
        for (const [multiprocessors, suffixTokens] of [
          [1, 16],
          [7, 0],
          [132, 16],
          [132, 64],
        ] as const) {
          const schedule = buildTaskSchedule(plan, { ...shape, multiprocessors, suffixTokens });
          const actual = emulateTaskSchedule(packTaskSchedule(plan, shape, schedule, 0), { q, k, v, scale });
          expect(relativeError(actual, expected)).toBeLessThan(1e-6);
        }
      });
    }
  }

  it('runs the speculative tree as prefix tasks plus per-query suffixes, one wave, costliest first', () => {
    const nodes = [
      { parent: -1, tokens: 1000 },
      ...Array.from({ length: 256 }, () => ({ parent: 0, tokens: 1 })),
    ];
    const { view } = buildPagedTree(nodes, 16, { seed: 3 });
    const shape: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };
    for (const strategy of ['deft-flatten', 'deft-node', 'deft-node-chunk'] as const) {
      const plan = planTreeAttention(view, defaultQueries(view), { shape, strategy });
      const schedule = buildTaskSchedule(plan, { ...shape, multiprocessors: 132 });
      // Every leaf is a suffix of its query; the prefix is the only group with tasks.
      expect(schedule.suffixSlots.length).toBe(256);
      expect(schedule.mergeQueries.length).toBe(256);
      let previousCost = Number.POSITIVE_INFINITY;
      let rows = 0;
      for (let task = 0; task < schedule.numTasks; task++) {
        const [, numTokens, , rowCount] = schedule.tasks.subarray(
          task * TASK_FIELDS,
          (task + 1) * TASK_FIELDS,
        );
        expect(rowCount!).toBeLessThanOrEqual(TASK_MAX_ROWS);
        const cost = numTokens! * (1 + 0.15 * Math.ceil(rowCount! / 16));
        expect(cost).toBeLessThanOrEqual(previousCost + 1e-9);
        previousCost = cost;
        rows += rowCount! * numTokens!;
      }
      // Each (row, prefix token) is computed exactly once.
      expect(rows).toBe(256 * 4 * 1000);
      // About one wave of CTAs (two per multiprocessor) and no more than two.
      expect(schedule.numTasks * shape.numKvHeads).toBeGreaterThanOrEqual(132);
      expect(schedule.numTasks * shape.numKvHeads).toBeLessThanOrEqual(2 * 2 * 132);
      expect(schedule.taskRows.length / TASK_ROW_FIELDS).toBeGreaterThan(0);
    }
  });

  it('merges KV splits so that a grid just over one wave fits in one', () => {
    const nodes = [
      { parent: -1, tokens: 4000 },
      ...Array.from({ length: 20 }, () => ({ parent: 0, tokens: 400 })),
    ];
    const { view } = buildPagedTree(nodes, 16, { seed: 4 });
    const shape: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };
    const plan = planTreeAttention(view, defaultQueries(view), { shape, strategy: 'deft-node' });
    const slots = 2 * 132;
    const schedule = buildTaskSchedule(plan, { ...shape, multiprocessors: 132 });
    // 20 branch tasks of 400 tokens and the 4000-token prompt's two row blocks in a few KV splits.
    expect(schedule.numTasks * shape.numKvHeads).toBeLessThanOrEqual(slots);
    expect(schedule.numTasks).toBeGreaterThan(20 + 2);
    // Fifty branches cannot fit one wave: the splits stay as the cost model chose them.
    const wide = buildPagedTree(
      [{ parent: -1, tokens: 4000 }, ...Array.from({ length: 50 }, () => ({ parent: 0, tokens: 400 }))],
      16,
      { seed: 4 },
    ).view;
    const widePlan = planTreeAttention(wide, defaultQueries(wide), { shape, strategy: 'deft-node' });
    expect(buildTaskSchedule(widePlan, { ...shape, multiprocessors: 132 }).numTasks).toBeGreaterThan(50 + 4);
  });
});
