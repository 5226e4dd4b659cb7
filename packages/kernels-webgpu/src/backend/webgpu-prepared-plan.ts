/// <reference types="@webgpu/types" />
import type { AttentionShape, PreparedPlan, TreeAttentionPlan } from '@deft/core';
import type { PlanBufferLayout } from './plan-buffer-layout.js';

let nextPlanId = 1;

/**
 * A plan uploaded for one decoding step: its index arrays in one buffer, the partial-state workspace
 * (`o` `[numPartials, numHeads, headDim]` f32 and `lse` `[numPartials, numHeads]` f32, base 2), a
 * uniform block per softmax scale, and the bind groups of every (storage, layer, q, out) it ran with.
 */
export class WebGpuPreparedPlan implements PreparedPlan {
  readonly backend = 'webgpu';
  readonly id = nextPlanId++;
  /** Uniform blocks by softmax scale. */
  readonly uniforms = new Map<number, GPUBuffer>();
  /** Attention bind groups by `scale/storage/layer/q`. */
  readonly attentionBindGroups = new Map<string, GPUBindGroup>();
  /** Merge bind groups by `scale/out`. */
  readonly mergeBindGroups = new Map<string, GPUBindGroup>();
  /** The pipelines this plan's shape runs with, set on first use. */
  kernels:
    | {
        readonly attention: GPUComputePipeline;
        readonly merge: GPUComputePipeline;
        /** Workgroups sharing one (KV head, chunk) unit's row tiles. */
        readonly rowSplits: number;
      }
    | undefined;
  private isDisposed = false;

  constructor(
    readonly owner: object,
    readonly plan: TreeAttentionPlan,
    readonly shape: AttentionShape,
    readonly layout: PlanBufferLayout,
    readonly planBuffer: GPUBuffer,
    readonly partialO: GPUBuffer,
    readonly partialLse: GPUBuffer,
    /** Largest KV slot any chunk reads (-1 when none). */
    readonly maxSlot: number,
    /** Most queries any chunk has. */
    readonly maxChunkQueries: number,
    private readonly onDispose: (plan: WebGpuPreparedPlan) => void,
  ) {}

  get disposed(): boolean {
    return this.isDisposed;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.planBuffer.destroy();
    this.partialO.destroy();
    this.partialLse.destroy();
    for (const buffer of this.uniforms.values()) buffer.destroy();
    this.uniforms.clear();
    this.attentionBindGroups.clear();
    this.mergeBindGroups.clear();
    this.kernels = undefined;
    this.onDispose(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
