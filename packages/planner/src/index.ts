export type { AutoChunkSizeOptions } from './chunk-size.js';
export {
  autoChunkSize,
  DEFAULT_MAX_PARTIAL_RATIO,
  DEFAULT_TARGET_WORK_UNITS,
  MIN_AUTO_CHUNK_SIZE,
} from './chunk-size.js';
export type { PlannerOptions, PlanTreeAttentionOptions } from './plan-tree-attention.js';
export { planTreeAttention } from './plan-tree-attention.js';
