export type { PartialStateInputs } from '../attention/compute-partial-states.js';
export type { AttentionStates } from '../attention/merge-attention-states.js';
export { mergeAttentionStates } from '../attention/merge-attention-states.js';
export type { PartialStates } from './compute-partials.js';
export { computePartials } from './compute-partials.js';
export type {
  DirectTreeAttentionArgs,
  ReferenceTreeView,
} from './direct-tree-attention.js';
export { directTreeAttention } from './direct-tree-attention.js';
