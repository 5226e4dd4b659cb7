import { type DType, InvalidArgumentError, isDType, kvBytesPerToken } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import type { PrefixCache } from '../cache/prefix-cache.js';
import type { PagePool } from '../pool/page-pool.js';

/** The model dimensions that size a KV cache. */
export interface KVModelShape {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly dtype: DType;
}

/** Bytes of memory per page and per token of a model, for all layers, K and V. */
export interface KVBytes {
  /** `numLayers × 2 × numKvHeads × headDim × bytes(dtype)`. */
  readonly bytesPerToken: number;
  /** `bytesPerToken × pageSize`. */
  readonly bytesPerPage: number;
}

/** A snapshot of a pool's pages. Every count is in pages; bytes appear when a model shape is given. */
export interface MemoryUsage {
  readonly pageSize: number;
  readonly totalPages: number;
  /** Pages with at least one holder (a node or a prefix-cache entry). */
  readonly usedPages: number;
  /** Pages with no holder. */
  readonly freePages: number;
  /** Pages with more than one holder (prefixes shared by reference). */
  readonly sharedPages: number;
  /** Pages the prefix cache holds (some also held by live nodes). */
  readonly cachedPages: number;
  /** Pages only the prefix cache holds: freed on demand. */
  readonly reclaimablePages: number;
  /** Present when a model shape was given. */
  readonly bytes?: KVBytes & { readonly usedBytes: number; readonly totalBytes: number };
}

/**
 * KV bytes per token and per page of a model over all layers (K and V).
 *
 * @throws InvalidArgumentError for a non-positive dimension or an unknown dtype.
 * @example
 * ```ts
 * kvBytes({ numLayers: 32, numKvHeads: 8, headDim: 128, dtype: 'f16' }, 16).bytesPerToken; // 131072
 * ```
 */
export function kvBytes(shape: KVModelShape, pageSize: number): KVBytes {
  assertInteger('shape.numLayers', shape.numLayers, 1);
  assertInteger('shape.numKvHeads', shape.numKvHeads, 1);
  assertInteger('shape.headDim', shape.headDim, 1);
  assertInteger('pageSize', pageSize, 1);
  if (!isDType(shape.dtype)) {
    throw new InvalidArgumentError(`shape.dtype must be 'f32' or 'f16', got ${String(shape.dtype)}`, {
      argument: 'shape.dtype',
      expected: "'f32' | 'f16'",
      actual: shape.dtype,
    });
  }
  const bytesPerToken = shape.numLayers * kvBytesPerToken(shape);
  return { bytesPerToken, bytesPerPage: bytesPerToken * pageSize };
}

/**
 * Counts a pool's pages: used, free, shared, cached and reclaimable, plus bytes for a model shape.
 *
 * @example
 * ```ts
 * const usage = memoryUsage(pool, { prefixCache, shape: { numLayers: 32, numKvHeads: 8, headDim: 128, dtype: 'f16' } });
 * console.log(`${usage.usedPages}/${usage.totalPages} pages, ${usage.bytes!.usedBytes / 2 ** 20} MiB`);
 * ```
 */
export function memoryUsage(
  pool: PagePool,
  options: { readonly prefixCache?: PrefixCache; readonly shape?: KVModelShape } = {},
): MemoryUsage {
  const cachedPages = options.prefixCache?.pageCount ?? 0;
  const reclaimablePages = options.prefixCache?.reclaimablePages() ?? 0;
  const usage: MemoryUsage = {
    pageSize: pool.pageSize,
    totalPages: pool.numPages,
    usedPages: pool.usedCount,
    freePages: pool.freeCount,
    sharedPages: pool.sharedCount,
    cachedPages,
    reclaimablePages,
  };
  if (options.shape === undefined) return usage;
  const bytes = kvBytes(options.shape, pool.pageSize);
  return {
    ...usage,
    bytes: {
      ...bytes,
      usedBytes: bytes.bytesPerPage * pool.usedCount,
      totalBytes: bytes.bytesPerPage * pool.numPages,
    },
  };
}
