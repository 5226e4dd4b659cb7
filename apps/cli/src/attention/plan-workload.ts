import type { PlanStrategy, TreeAttentionPlan } from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import type { BuiltWorkload } from '../workloads/build-workload.js';
import { hostMemoryBudget } from '../workloads/workload-memory.js';

/** A plan and how long the planner took to build it. */
export interface TimedPlan {
  readonly plan: TreeAttentionPlan;
  /** Median planning time over {@link TimedPlan.planRuns} runs, in microseconds. */
  readonly planMicroseconds: number;
  /** Fastest planning run, in microseconds. */
  readonly planMinMicroseconds: number;
  readonly planRuns: number;
}

/** Bounds of the planning-time measurement. */
export interface PlanTimingOptions {
  /** Planning runs at least (default 5) and at most (default 200). */
  readonly minRuns?: number;
  readonly maxRuns?: number;
  /** Stop once this much time was spent, in milliseconds (default 150). */
  readonly budgetMilliseconds?: number;
}

/**
 * Plans a built workload with one strategy, timing the planner over repeated runs (the median is
 * reported: the first run pays for the JIT). The planner gets the command's host-memory budget
 * (`DEFT_HOST_MEMORY_BUDGET`, else half the machine's memory).
 *
 * @throws {CapacityError} before allocating when the plan would exceed the budget or its 32-bit indices
 *   (the `sequence` baseline reads every query's whole path, so it is the first to).
 *
 * @example
 * ```ts
 * const { plan, planMicroseconds } = planWorkload(buildWorkload(workload), 'deft-flatten');
 * ```
 */
export function planWorkload(
  built: BuiltWorkload,
  strategy: PlanStrategy,
  timing: PlanTimingOptions = {},
): TimedPlan {
  const minRuns = timing.minRuns ?? 5;
  const maxRuns = timing.maxRuns ?? 200;
  const budget = timing.budgetMilliseconds ?? 150;
  const samples: number[] = [];
  let plan: TreeAttentionPlan | undefined;
  const hostMemoryBudgetBytes = hostMemoryBudget();
  const started = performance.now();
  while (samples.length < minRuns || (samples.length < maxRuns && performance.now() - started < budget)) {
    const before = performance.now();
    plan = planTreeAttention(built.view, built.queries, {
      strategy,
      shape: built.shape,
      hostMemoryBudgetBytes,
    });
    samples.push((performance.now() - before) * 1000);
  }
  samples.sort((a, b) => a - b);
  return {
    plan: plan!,
    planMicroseconds: samples[Math.floor(samples.length / 2)]!,
    planMinMicroseconds: samples[0]!,
    planRuns: samples.length,
  };
}
