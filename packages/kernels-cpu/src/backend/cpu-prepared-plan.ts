import type { AttentionShape, PreparedPlan, TreeAttentionPlan } from '@deft/core';
import { DisposedError } from '@deft/core';

/** A plan accepted by the CPU backend (validated; nothing to upload). */
export class CpuPreparedPlan implements PreparedPlan {
  readonly backend = 'cpu';
  /** @internal The backend that prepared the plan. */
  readonly owner: object;
  /** The shape given to `preparePlan`, checked against every `treeAttention` call; undefined if none was given. */
  readonly shape: AttentionShape | undefined;
  #plan: TreeAttentionPlan | undefined;

  constructor(owner: object, plan: TreeAttentionPlan, shape: AttentionShape | undefined) {
    this.owner = owner;
    this.#plan = plan;
    this.shape = shape;
  }

  get plan(): TreeAttentionPlan {
    if (this.#plan === undefined) throw new DisposedError('prepared plan');
    return this.#plan;
  }

  get disposed(): boolean {
    return this.#plan === undefined;
  }

  dispose(): void {
    this.#plan = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
