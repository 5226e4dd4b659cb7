// What `deft bench` and the GPU bench modules (`src/gpu/`) exchange, in a file of its own: the modules
// import these types, and `gpu-bench-modules.ts` imports the modules, so neither imports the other.
import type { PlanStrategy } from '@deft/core';
import type { Progress } from '../cli/progress.js';
import type { Workload } from '../workloads/workload.js';
import type { BenchRow } from './bench-result.js';

/** GPU backends `deft bench` can hand the work to. */
export type GpuBackendName = 'cuda' | 'webgpu';

/** What `deft bench` passes to a GPU bench module. */
export interface GpuBenchOptions {
  readonly workloads: readonly Workload[];
  readonly strategies: readonly PlanStrategy[];
  readonly repetitions: number;
  readonly progress: Progress;
}

/** What a GPU bench module returns. */
export interface GpuBenchOutcome {
  readonly device: string;
  readonly rows: readonly BenchRow[];
  /** Extra lines to print under the table (floors, notes). */
  readonly notes?: readonly string[];
}
