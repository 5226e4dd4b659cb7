import type { PlanStrategy } from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import { planWorkload } from '../attention/plan-workload.js';
import { randomAttentionInputs } from '../attention/random-inputs.js';
import { createAttentionSession } from '../attention/run-attention.js';
import type { Progress } from '../cli/progress.js';
import { formatMicroseconds } from '../format/format-number.js';
import { type BuiltWorkload, buildWorkload } from '../workloads/build-workload.js';
import type { Workload } from '../workloads/workload.js';
import type { BenchRow } from './bench-result.js';
import { withSequenceRatios } from './sequence-ratios.js';

/** What the CPU bench measures. */
export interface CpuBenchOptions {
  readonly workloads: readonly Workload[];
  /** Strategies to run; `sequence` should be among them for the ratios. */
  readonly strategies: readonly PlanStrategy[];
  /** Timed runs per (workload, strategy), after one untimed warm-up run when > 1. */
  readonly repetitions: number;
  /**
   * Time every head (true), or only the query heads of one KV head and scale the time by the number of
   * KV heads (false, the default): KV heads are independent and the reference runs them one after another.
   */
  readonly allHeads?: boolean;
  readonly progress: Progress;
}

/** Description of the CPU backend's timings, printed with every CPU report. */
export const CPU_TIMING_NOTE =
  'CPU timings are of the float64 reference backend (a correctness oracle, not a fast kernel): compare strategies by KV bytes, not by time';

/** How CPU times are scaled unless every head is timed. */
export const CPU_HEAD_SCALING_NOTE =
  'attention timed on one KV head and its query heads, scaled by the number of KV heads (--all-heads times every head)';

/**
 * Runs every workload through every strategy on the CPU reference backend: one KV cache per workload,
 * one plan per strategy (planned for the workload's full shape, so chunks and IO are those of the real
 * shape), `repetitions` timed layers each. Unless `allHeads`, attention runs on one KV head and its
 * query heads and the time is scaled by the number of KV heads (`extra.headScale`, `extra.measuredMicroseconds`).
 *
 * @example
 * ```ts
 * const { rows, device } = await runCpuBench({ workloads, strategies: PLAN_STRATEGIES, repetitions: 1, progress });
 * ```
 */
export async function runCpuBench(options: CpuBenchOptions): Promise<{ rows: BenchRow[]; device: string }> {
  const backend = createCpuBackend();
  const rows: Omit<BenchRow, 'vsSequence'>[] = [];
  let warmedUp = false;
  try {
    for (const workload of options.workloads) {
      const built = buildWorkload(workload);
      const timedBuilt = options.allHeads === true ? built : oneKvHead(built);
      const headScale = workload.kvHeads / timedBuilt.workload.kvHeads;
      const session = createAttentionSession(backend, timedBuilt, randomAttentionInputs(timedBuilt));
      try {
        for (const strategy of options.strategies) {
          options.progress.start(`${workload.name} ${strategy}`);
          const timed = planWorkload(built, strategy);
          // An untimed run first: with one repetition the first strategy would otherwise pay for
          // compiling the attention loops and look slower than the ones after it.
          if (options.repetitions > 1 || !warmedUp) await session.run(timed.plan, 1);
          warmedUp = true;
          const { layerMicroseconds } = await session.run(timed.plan, options.repetitions);
          const sorted = [...layerMicroseconds].sort((a, b) => a - b);
          const median = sorted[Math.floor(sorted.length / 2)]!;
          rows.push({
            workload: workload.name,
            strategy,
            numChunks: timed.plan.numChunks,
            numPartials: timed.plan.numPartials,
            io: timed.plan.io,
            planMicroseconds: timed.planMicroseconds,
            layerMicroseconds: {
              median: median * headScale,
              min: sorted[0]! * headScale,
              runs: sorted.length,
            },
            extra: { headScale, measuredMicroseconds: median },
          });
          options.progress.done(formatMicroseconds(median * headScale));
        }
      } finally {
        session.dispose();
      }
    }
    return { rows: withSequenceRatios(rows), device: backend.capabilities.device };
  } finally {
    backend.dispose();
  }
}

/** The same tree with one KV head and its group of query heads. */
function oneKvHead(built: BuiltWorkload): BuiltWorkload {
  const group = built.workload.heads / built.workload.kvHeads;
  return {
    ...built,
    workload: { ...built.workload, heads: group, kvHeads: 1 },
    shape: { ...built.shape, numHeads: group, numKvHeads: 1 },
  };
}
