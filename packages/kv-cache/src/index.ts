export type { PagedTreeView, TreeQueries } from './plan/paged-tree-view.js';
export { planTreeAttention } from './plan/plan-tree-attention.js';
export type { PlanTreeAttentionOptions } from './plan/plan-tree-attention.js';
export { autoChunkSize, DEFAULT_TARGET_WORK_UNITS, MIN_AUTO_CHUNK_SIZE } from './plan/chunk-size.js';
