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
import { emulateSchedule } from '../../test/emulate-schedule.js';
import { buildSchedule, EXEC_CHUNK_FIELDS, UNIT_FIELDS } from './build-schedule.js';
import { packSchedule } from './pack-schedule.js';

const SHAPE: AttentionShape = { numHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f32' };

describe('buildSchedule', () => {
  for (let seed = 0; seed < 24; seed++) {
    const testCase = randomTreeCase(seed, { kind: RANDOM_TREE_KINDS[seed % RANDOM_TREE_KINDS.length]! });
    for (const strategy of ['deft-flatten', 'deft-node', 'deft-node-chunk', 'sequence'] as const) {
      it(`computes the reference on ${testCase.description} (${strategy})`, () => {
        const plan = planTreeAttention(testCase.view, testCase.queries, {
          strategy,
          shape: SHAPE,
          chunkSize: 1 + (seed % 5) * 7,
        });
        validatePlan(plan);
        const random = seededRandom(seed * 31 + strategy.length);
        const numQueries = testCase.queries.nodes.length;
        const q = Float32Array.from(
          { length: numQueries * SHAPE.numHeads * SHAPE.headDim },
          () => random() * 4 - 2,
        );
        const rowLength = SHAPE.numKvHeads * SHAPE.headDim;
        const k = Float32Array.from({ length: testCase.numSlots * rowLength }, () => random() * 2 - 1);
        const v = Float32Array.from({ length: testCase.numSlots * rowLength }, () => random() * 2 - 1);
        const scale = 1 / Math.sqrt(SHAPE.headDim);
        const expected = directTreeAttention({
          view: testCase.view,
          queries: testCase.queries,
          q,
          k,
          v,
          ...SHAPE,
          scale,
        });
        for (const multiprocessors of [1, 7, 132]) {
          const schedule = buildSchedule(plan, { ...SHAPE, multiprocessors });
          const actual = emulateSchedule(packSchedule(plan, SHAPE, schedule, 0), { q, k, v, scale });
          expect(relativeError(actual, expected)).toBeLessThan(1e-6);
        }
      });
    }
  }

  it('covers every (chunk, query) of the plan once and orders units by cost', () => {
    const nodes = [
      { parent: -1, tokens: 1000 },
      ...Array.from({ length: 256 }, () => ({ parent: 0, tokens: 1 })),
    ];
    const { view } = buildPagedTree(nodes, 16, { seed: 3 });
    const shape: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };
    const plan = planTreeAttention(view, defaultQueries(view), { shape });
    const schedule = buildSchedule(plan, { ...shape, multiprocessors: 132 });
    // The 256-query prefix is coalesced: each query keeps few partial states.
    let planMax = 0;
    let scheduleMax = 0;
    for (let query = 0; query < plan.numQueries; query++) {
      planMax = Math.max(planMax, plan.queryPartialIndptr[query + 1]! - plan.queryPartialIndptr[query]!);
      scheduleMax = Math.max(
        scheduleMax,
        schedule.queryPartialIndptr[query + 1]! - schedule.queryPartialIndptr[query]!,
      );
    }
    expect(scheduleMax).toBeLessThanOrEqual(planMax);
    expect(schedule.numUnits * shape.numKvHeads).toBeGreaterThanOrEqual(132);
    const covered = new Map<number, number>();
    for (let unit = 0; unit < schedule.numUnits; unit++) {
      const fields = schedule.units.subarray(unit * UNIT_FIELDS, (unit + 1) * UNIT_FIELDS);
      const rowStart = fields[7]!;
      const rowCount = fields[8]!;
      const base = fields[9]! * EXEC_CHUNK_FIELDS;
      for (let row = rowStart!; row < rowStart! + rowCount!; row++) {
        const key = base * 100000 + row;
        covered.set(key, (covered.get(key) ?? 0) + 1);
      }
    }
    for (const count of covered.values()) expect(count).toBe(1);
  });
});
