export type { KVBytes, KVModelShape, MemoryUsage } from './accounting/memory-usage.js';
export { kvBytes, memoryUsage } from './accounting/memory-usage.js';
export type { PrefixBlock, PrefixCacheOptions, PrefixMatch } from './cache/prefix-cache.js';
export { PrefixCache } from './cache/prefix-cache.js';
export type { SlotMoves } from './cache/slot-moves.js';
export type { AttachOptions, CommitChange, TreeKVCacheOptions } from './cache/tree-kv-cache.js';
export { TreeKVCache } from './cache/tree-kv-cache.js';
export type { PagePoolOptions, PageReclaimer } from './pool/page-pool.js';
export { MAX_NODE_TOKENS, MAX_POOL_SLOTS, PagePool } from './pool/page-pool.js';
