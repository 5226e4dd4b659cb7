import type { PlanIO, PlanStrategy } from '@deft/core';
import { BackendError, UnsupportedError } from '@deft/core';
import {
  type CopyBandwidth,
  type CudaAttentionKernel,
  type CudaBackend,
  type CudaDeviceInfo,
  type CudaPlanOptions,
  type CudaScheduleSummary,
  type CudaTensor,
  createCudaBackend,
} from '@deft/kernels-cuda';
import { ATTENTION_TOLERANCE, relativeError } from '@deft/testing';
import { planWorkload } from '../attention/plan-workload.js';
import { randomAttentionInputs } from '../attention/random-inputs.js';
import { referenceAttention } from '../attention/reference-attention.js';
import type { BenchRow } from '../bench/bench-result.js';
import type { GpuBenchOptions, GpuBenchOutcome } from '../bench/gpu-bench-types.js';
import { withSequenceRatios } from '../bench/sequence-ratios.js';
import { formatMicroseconds } from '../format/format-number.js';
import { buildWorkload } from '../workloads/build-workload.js';
import { type BlockProfileSummary, summarizeBlockProfile } from './block-profile-summary.js';

/** `tasks` (mask-free tasks) or `units` (work units over the plan's chunks). */
export type CudaExecutorName = NonNullable<CudaPlanOptions['executor']>;

/** Knobs of the CUDA bench beyond {@link GpuBenchOptions}. */
export interface CudaBenchSettings {
  /** Timed runs per (workload, strategy); at least 50 (default `max(50, repetitions)`). */
  readonly runs?: number;
  /** Untimed runs first (default 5). */
  readonly warmupRuns?: number;
  /** treeAttention calls enqueued back to back to measure host time per call (default 200). */
  readonly hostCalls?: number;
  /** Attention kernel (default `auto`). */
  readonly kernel?: CudaAttentionKernel;
  /** Scheduler overrides passed to `preparePlan`. */
  readonly schedule?: CudaPlanOptions['schedule'];
  /** Task-scheduler overrides passed to `preparePlan`. */
  readonly tasks?: CudaPlanOptions['tasks'];
  /** Executors timed for every strategy (default: the backend's default only). */
  readonly executors?: readonly CudaExecutorName[];
  /** An existing backend (not disposed by the bench). */
  readonly backend?: CudaBackend;
}

/** Timing of one (workload, strategy). */
export interface CudaStrategyResult {
  readonly strategy: PlanStrategy;
  /** The executor the plan ran with (`default` when none was asked for). */
  readonly executor: CudaExecutorName | 'default';
  readonly io: PlanIO;
  readonly numChunks: number;
  readonly numPartials: number;
  /** Planner time (median), µs. */
  readonly planMicroseconds: number;
  /** `preparePlan` time (schedule, pack, one upload), µs. */
  readonly prepareMicroseconds: number;
  readonly schedule: CudaScheduleSummary;
  /** `‖out − ref‖ / ‖ref‖` against the float64 reference (Infinity for NaN). */
  readonly relativeError: number;
  readonly passed: boolean;
  /** GPU time per layer between CUDA events, L2 flushed before each run, µs. */
  readonly layerMicroseconds: {
    readonly median: number;
    readonly min: number;
    readonly max: number;
    readonly runs: number;
  };
  /** Host time of one `treeAttention` call (enqueue only, no wait), µs. */
  readonly hostMicroseconds: number;
  /** Unique KV bytes / median time, GB/s. */
  readonly gigabytesPerSecond: number;
  readonly vsReadOnce: number;
  readonly vsBandwidthFloor: number;
  /** The task executor's attention launch profiled CTA by CTA (one run, L2 flushed before it). */
  readonly blockProfile?: BlockProfileSummary;
}

/** One workload's floors and strategies. */
export interface CudaWorkloadResult {
  readonly workload: string;
  readonly uniqueKvBytes: number;
  readonly numQueries: number;
  /** Unique KV bytes / copy bandwidth (read + write bytes per second), µs. */
  readonly bandwidthFloorMicroseconds: number;
  /** A kernel streaming exactly the plan's KV rows once (plan order, L2 flushed), median µs. */
  readonly readOnceMicroseconds: number;
  /**
   * The same bytes read the way the attention kernels read them (one CTA per KV head and token range, each
   * reading its head's slice of every row), median µs: the floor of a per-head gather.
   */
  readonly readOncePerHeadMicroseconds: number;
  readonly strategies: readonly CudaStrategyResult[];
}

/** Everything the CUDA bench measured. */
export interface CudaBenchReport {
  readonly device: CudaDeviceInfo & { readonly description: string };
  readonly copyBandwidth: CopyBandwidth;
  /** An empty kernel between CUDA events, median µs (launch latency floor). */
  readonly emptyKernelMicroseconds: number;
  readonly runs: number;
  readonly workloads: readonly CudaWorkloadResult[];
  readonly rows: readonly BenchRow[];
  readonly allPassed: boolean;
  readonly notes: readonly string[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Creates the CUDA backend, or throws `UnsupportedError` (with the reason) when none can run here. */
export function openCudaBackend(): CudaBackend {
  try {
    return createCudaBackend();
  } catch (error) {
    if (BackendError.isInstance(error)) throw new UnsupportedError(error.message, { cause: error });
    throw error;
  }
}

/**
 * Times `enqueue` with CUDA events: `runs` samples after `warmupRuns`, the L2 flushed before each. The
 * flush (about 100 µs of reading) is still running when the events and the work are enqueued, so the
 * time between the events is device time, not host launch latency.
 */
function timeWithEvents(
  backend: CudaBackend,
  enqueue: () => void,
  runs: number,
  warmupRuns: number,
): number[] {
  const start = backend.timing.createEvent();
  const end = backend.timing.createEvent();
  try {
    const samples: number[] = [];
    for (let run = -warmupRuns; run < runs; run++) {
      backend.timing.flushL2();
      start.record();
      enqueue();
      end.record();
      const milliseconds = end.millisecondsSince(start);
      if (run >= 0) samples.push(milliseconds * 1000);
    }
    return samples;
  } finally {
    start.dispose();
    end.dispose();
  }
}

/** Slots of the plan's tokens, each once, in plan order. */
function uniqueSlotsInOrder(tokenSlots: Int32Array): Int32Array {
  const seen = new Set<number>();
  const slots: number[] = [];
  for (const slot of tokenSlots) {
    if (!seen.has(slot)) {
      seen.add(slot);
      slots.push(slot);
    }
  }
  return Int32Array.from(slots);
}

/**
 * Runs the paper workloads on the CUDA backend in one process: per workload, the KV cache and queries
 * are uploaded once; per strategy the plan is built (planner timed), prepared (timed), checked against
 * the float64 reference (output poisoned with NaN first; relative error < 2e-3 for fp16 KV), then timed
 * with CUDA events (median of at least 50 runs, warm-up excluded, L2 flushed before each run by reading
 * a buffer of at least 256 MiB). The same process measures the device copy bandwidth, the bandwidth
 * floor (unique KV bytes / copy bandwidth, where the bandwidth counts read + written bytes), the
 * read-once time (a kernel that streams exactly the plan's KV rows once), an empty kernel, and the
 * host time of one `treeAttention` call (enqueue only).
 *
 * @throws UnsupportedError when no CUDA backend can run here (no addon, no device or driver).
 * @example
 * ```ts
 * const report = await runCudaBenchReport({ workloads, strategies: PLAN_STRATEGIES, repetitions: 50, progress });
 * ```
 */
export async function runCudaBenchReport(
  options: GpuBenchOptions & { readonly settings?: CudaBenchSettings },
): Promise<CudaBenchReport> {
  const settings = options.settings ?? {};
  const runs = Math.max(50, settings.runs ?? options.repetitions);
  const warmupRuns = settings.warmupRuns ?? 5;
  const hostCalls = settings.hostCalls ?? 200;
  const backend = settings.backend ?? openCudaBackend();
  const strategies: PlanStrategy[] = [...options.strategies];
  if (!strategies.includes('sequence')) strategies.push('sequence');
  try {
    const copyBandwidth = backend.timing.measureCopyBandwidth({ bytes: 1 << 30, runs: 10 });
    const emptyKernelMicroseconds = median(
      timeWithEvents(backend, () => backend.timing.emptyKernel(), 50, 5),
    );
    const workloads: CudaWorkloadResult[] = [];
    const rows: Omit<BenchRow, 'vsSequence'>[] = [];
    let allPassed = true;
    for (const workload of options.workloads) {
      const built = buildWorkload(workload);
      const inputs = randomAttentionInputs(built);
      const expected = referenceAttention(built, inputs);
      const numQueries = built.queries.nodes.length;
      const tensorShape = [numQueries, workload.heads, workload.headDim];
      const owned: { dispose(): void }[] = [];
      try {
        const storage = backend.createKVStorage({
          numLayers: 1,
          numPages: built.numSlots / workload.pageSize,
          pageSize: workload.pageSize,
          numKvHeads: workload.kvHeads,
          headDim: workload.headDim,
          dtype: workload.dtype,
        });
        owned.push(storage);
        backend.writeKV(storage, 0, built.tokenSlots, inputs.k, inputs.v);
        const q: CudaTensor = backend.createTensor({ shape: tensorShape, dtype: 'f32' });
        owned.push(q);
        backend.uploadTensor(q, inputs.q);
        const out: CudaTensor = backend.createTensor({ shape: tensorShape, dtype: 'f32' });
        owned.push(out);
        const poison = new Float32Array(out.size).fill(Number.NaN);

        let uniqueKvBytes = 0;
        let readOnceMicroseconds = Number.NaN;
        let readOncePerHeadMicroseconds = Number.NaN;
        const results: CudaStrategyResult[] = [];
        for (const strategy of strategies) {
          const timed = planWorkload(built, strategy);
          const { plan } = timed;
          if (uniqueKvBytes === 0) {
            uniqueKvBytes = plan.io.uniqueKvBytes;
            const readOnce = backend.timing.createReadOnce(storage, uniqueSlotsInOrder(plan.tokenSlots));
            try {
              readOnceMicroseconds = median(timeWithEvents(backend, () => readOnce.run(0), runs, warmupRuns));
              readOncePerHeadMicroseconds = median(
                timeWithEvents(backend, () => readOnce.run(0, 'heads'), runs, warmupRuns),
              );
            } finally {
              readOnce.dispose();
            }
          }
          for (const executor of settings.executors ?? ['default' as const]) {
            options.progress.start(`${workload.name} ${strategy} ${executor}`);
            const prepareSamples: number[] = [];
            const planOptions: CudaPlanOptions = {
              ...(settings.kernel === undefined ? {} : { kernel: settings.kernel }),
              ...(settings.schedule === undefined ? {} : { schedule: settings.schedule }),
              ...(settings.tasks === undefined ? {} : { tasks: settings.tasks }),
              ...(executor === 'default' ? {} : { executor }),
            };
            let prepared = backend.preparePlan(plan, built.shape, planOptions);
            for (let sample = 0; sample < 5; sample++) {
              await backend.synchronize();
              prepared.dispose();
              const before = performance.now();
              prepared = backend.preparePlan(plan, built.shape, planOptions);
              prepareSamples.push((performance.now() - before) * 1000);
            }
            try {
              const args = { storage, layer: 0, plan: prepared, q, out, scale: inputs.scale };
              // Check: poison, run once, compare with the float64 reference.
              backend.uploadTensor(out, poison);
              backend.treeAttention(args);
              const output = await backend.downloadTensor(out);
              const error = relativeError(output, expected);
              const passed = error < ATTENTION_TOLERANCE[workload.dtype];
              allPassed &&= passed;
              // Time: CUDA events around one layer, L2 flushed before each run.
              const samples = timeWithEvents(backend, () => backend.treeAttention(args), runs, warmupRuns);
              // Host time per call: enqueue back to back, no wait.
              await backend.synchronize();
              const before = process.hrtime.bigint();
              for (let call = 0; call < hostCalls; call++) backend.treeAttention(args);
              const hostMicroseconds = Number(process.hrtime.bigint() - before) / 1000 / hostCalls;
              await backend.synchronize();
              let blockProfile: BlockProfileSummary | undefined;
              if (prepared.schedule.executor === 'tasks') {
                backend.timing.flushL2();
                blockProfile = summarizeBlockProfile(backend.timing.profileTreeAttention(args), {
                  kernel: prepared.schedule.kernel,
                  multiprocessors: backend.deviceInfo.multiprocessors,
                });
              }
              const sorted = [...samples].sort((a, b) => a - b);
              const layerMedian = median(sorted);
              const bandwidthFloor = plan.io.uniqueKvBytes / (copyBandwidth.gigabytesPerSecond * 1e3);
              const result: CudaStrategyResult = {
                strategy,
                executor,
                io: plan.io,
                numChunks: plan.numChunks,
                numPartials: plan.numPartials,
                planMicroseconds: timed.planMicroseconds,
                prepareMicroseconds: median(prepareSamples),
                schedule: prepared.schedule,
                relativeError: error,
                passed,
                layerMicroseconds: {
                  median: layerMedian,
                  min: sorted[0]!,
                  max: sorted[sorted.length - 1]!,
                  runs: sorted.length,
                },
                hostMicroseconds,
                gigabytesPerSecond: plan.io.uniqueKvBytes / (layerMedian * 1e3),
                vsReadOnce: layerMedian / readOnceMicroseconds,
                vsBandwidthFloor: layerMedian / bandwidthFloor,
                ...(blockProfile === undefined ? {} : { blockProfile }),
              };
              results.push(result);
              rows.push({
                workload: workload.name,
                strategy,
                numChunks: plan.numChunks,
                numPartials: plan.numPartials,
                io: plan.io,
                planMicroseconds: timed.planMicroseconds,
                layerMicroseconds: result.layerMicroseconds,
                extra: {
                  relativeError: error,
                  gigabytesPerSecond: result.gigabytesPerSecond,
                  readOnceMicroseconds,
                  bandwidthFloorMicroseconds: bandwidthFloor,
                  vsReadOnce: result.vsReadOnce,
                  vsBandwidthFloor: result.vsBandwidthFloor,
                  hostMicroseconds,
                  prepareMicroseconds: result.prepareMicroseconds,
                  units: prepared.schedule.numUnits,
                  tasksExecutor: prepared.schedule.executor === 'tasks' ? 1 : 0,
                },
              });
              options.progress.done(
                `${formatMicroseconds(layerMedian)}${passed ? '' : ` CHECK FAILED (rel. error ${error})`}`,
              );
            } finally {
              prepared.dispose();
            }
          }
        }
        workloads.push({
          workload: workload.name,
          uniqueKvBytes,
          numQueries,
          bandwidthFloorMicroseconds: uniqueKvBytes / (copyBandwidth.gigabytesPerSecond * 1e3),
          readOnceMicroseconds,
          readOncePerHeadMicroseconds,
          strategies: results,
        });
      } finally {
        for (const object of owned.reverse()) object.dispose();
      }
    }
    options.progress.finish();
    const info = backend.deviceInfo;
    return {
      device: { ...info, description: backend.capabilities.device },
      copyBandwidth,
      emptyKernelMicroseconds,
      runs,
      workloads,
      rows: withSequenceRatios(rows),
      allPassed,
      notes: [
        `device copy bandwidth ${copyBandwidth.gigabytesPerSecond.toFixed(0)} GB/s (cudaMemcpy D2D of ${copyBandwidth.bytes >> 20} MiB, read + write bytes); empty kernel ${emptyKernelMicroseconds.toFixed(2)} µs between events`,
        "bandwidth floor = unique KV bytes / copy bandwidth; read-once = a kernel streaming the plan's KV rows once (plan order), L2 flushed",
        `time per layer = median of ${runs} runs between CUDA events, L2 flushed (>= 256 MiB read) before each, ${warmupRuns} warm-up runs excluded`,
      ],
    };
  } finally {
    if (settings.backend === undefined) backend.dispose();
  }
}

/**
 * The `deft bench --backend cuda` entry point: {@link runCudaBenchReport} reduced to the rows and notes
 * the CLI prints.
 *
 * @throws UnsupportedError when no CUDA backend can run here.
 */
export async function runCudaBench(options: GpuBenchOptions): Promise<GpuBenchOutcome> {
  const report = await runCudaBenchReport(options);
  return { device: report.device.description, rows: report.rows, notes: report.notes };
}
