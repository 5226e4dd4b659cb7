import type { AttentionShape, PreparedPlan, TreeAttentionPlan } from '@deft/core';

/** How a prepared plan runs on the device. */
export interface CudaScheduleSummary {
  /** `tasks` (mask-free tasks, v7) or `units` (work units over the plan's chunks, v1-v6). */
  readonly executor: 'tasks' | 'units';
  /** Execution chunks (coalesced runs of plan chunks), or groups of tokens with one query set (tasks). */
  readonly numExecChunks: number;
  /** Work units or tasks; each runs as one CTA per KV head. */
  readonly numUnits: number;
  /** Tokens attended to in the merge kernel (sum over queries of their suffixes; tasks only). */
  readonly suffixTokens: number;
  /** Partial-state slots of the schedule (queries seen by one execution chunk write their output directly). */
  readonly numExecPartials: number;
  /** Queries whose output is a merge of several partial states. */
  readonly mergedQueries: number;
  /** Whether the merge runs inside the attention launch (else a second, small launch). */
  readonly fusedMerge: boolean;
  /** `"wgmma"` (Hopper warpgroup MMA), `"mma"` (mma.sync tensor cores) or `"scalar"` (CUDA cores). */
  readonly kernel: 'mma' | 'wgmma' | 'scalar';
  /** KV tiles kept in shared memory per CTA. */
  readonly ringStages: number;
  /** Dynamic shared memory per CTA of the tensor-core kernel. */
  readonly sharedBytes: number;
}

/** A plan uploaded to the device with its execution schedule, reused by every layer of a step. */
export class CudaPreparedPlan implements PreparedPlan {
  readonly backend = 'cuda';
  readonly plan: TreeAttentionPlan;
  /** The shape the plan was prepared for. */
  readonly shape: AttentionShape;
  readonly schedule: CudaScheduleSummary;
  /** @internal Largest KV slot the plan reads. */
  readonly maxSlot: number;
  /** @internal The addon's plan handle. */
  readonly handle: number;
  /** @internal The task executor's tasks (`[slotStart, numTokens, rowStart, rowCount]` each), else empty. */
  readonly tasks: Int32Array;
  /** @internal Identifies the owning backend. */
  readonly owner: object;
  #disposed = false;
  readonly #release: (handle: number) => void;

  /** @internal Created by the backend only. */
  constructor(
    owner: object,
    plan: TreeAttentionPlan,
    shape: AttentionShape,
    schedule: CudaScheduleSummary,
    maxSlot: number,
    handle: number,
    release: (handle: number) => void,
    tasks: Int32Array = new Int32Array(0),
  ) {
    this.owner = owner;
    this.plan = plan;
    this.shape = shape;
    this.schedule = schedule;
    this.maxSlot = maxSlot;
    this.handle = handle;
    this.tasks = tasks;
    this.#release = release;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the plan's device buffer (idempotent). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#release(this.handle);
  }
}
