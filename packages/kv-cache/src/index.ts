export type { KVBytes, KVModelShape, MemoryUsage } from './accounting/memory-usage.js';
export { kvBytes, memoryUsage } from './accounting/memory-usage.js';
export type { PrefixBlock, PrefixCacheOptions, PrefixMatch } from './cache/prefix-cache.js';
export { PrefixCache } from './cache/prefix-cache.js';
export type { SlotMoves } from './cache/slot-moves.js';
export type { AttachOptions, CommitChange, TreeKVCacheOptions } from './cache/tree-kv-cache.js';
export { TreeKVCache } from './cache/tree-kv-cache.js';
export type { AutoChunkSizeOptions } from './plan/chunk-size.js';
export {
  autoChunkSize,
  DEFAULT_MAX_PARTIAL_RATIO,
  DEFAULT_TARGET_WORK_UNITS,
  MIN_AUTO_CHUNK_SIZE,
} from './plan/chunk-size.js';
export type { PagedTreeView, TreeQueries } from './plan/paged-tree-view.js';
export type { PlanTreeAttentionOptions } from './plan/plan-tree-attention.js';
export { planTreeAttention } from './plan/plan-tree-attention.js';
export type { PagePoolOptions, PageReclaimer } from './pool/page-pool.js';
export { PagePool } from './pool/page-pool.js';
