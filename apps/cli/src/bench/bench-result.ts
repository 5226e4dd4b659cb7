import type { PlanIO, PlanStrategy } from '@deft/core';
import type { WorkloadSummary } from '../workloads/workload-summary.js';

/** Version of the JSON written by `deft bench --json`. */
export const BENCH_FORMAT_VERSION = 1;

/** One (workload, strategy) measurement of `deft bench`. */
export interface BenchRow {
  readonly workload: string;
  readonly strategy: PlanStrategy;
  readonly numChunks: number;
  readonly numPartials: number;
  /** The plan's IO model per layer. */
  readonly io: PlanIO;
  /** Planner time, median of repeated runs, µs. */
  readonly planMicroseconds: number;
  /** Attention time per layer: median and fastest of `runs` timed runs, µs. */
  readonly layerMicroseconds: { readonly median: number; readonly min: number; readonly runs: number };
  /** Ratios to the `sequence` baseline of the same workload in the same run (`time`: median over median). */
  readonly vsSequence: { readonly time: number; readonly kvBytes: number };
  /** Backend-specific numbers (e.g. a GPU's bandwidth floor, GB/s on unique KV bytes). */
  readonly extra?: Readonly<Record<string, number>>;
}

/** A workload as `deft bench` reports it. */
export interface BenchWorkload extends WorkloadSummary {
  readonly name: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dtype: string;
  readonly pageSize: number;
}

/** The whole report of `deft bench`. */
export interface BenchReport {
  readonly format: 'deft-bench';
  readonly version: typeof BENCH_FORMAT_VERSION;
  readonly date: string;
  readonly backend: { readonly name: string; readonly device: string; readonly note: string };
  readonly host: { readonly node: string; readonly platform: string; readonly cpus: number };
  readonly settings: {
    readonly repetitions: number;
    readonly quick: boolean;
    readonly strategies: readonly PlanStrategy[];
  };
  readonly workloads: readonly BenchWorkload[];
  readonly results: readonly BenchRow[];
}
