import type { DType } from '@deft/core';

/** One node of a workload tree: its parent's index (`-1` for the root, always before the child) and its token count. */
export interface WorkloadNode {
  readonly parent: number;
  readonly tokens: number;
}

/**
 * A tree-attention workload: the shape of one layer and a decoding tree.
 * `queries` are `[nodeIndex, position]` pairs; by default every leaf at its last token.
 */
export interface Workload {
  readonly name: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dtype: DType;
  readonly pageSize: number;
  readonly seed: number;
  readonly nodes: readonly WorkloadNode[];
  readonly queries?: readonly (readonly [number, number])[];
}

/** The attention shape and storage settings of a workload, without its tree. */
export type WorkloadShape = Pick<Workload, 'heads' | 'kvHeads' | 'headDim' | 'dtype' | 'pageSize' | 'seed'>;
