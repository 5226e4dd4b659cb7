import { CapacityError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { TreeKVCache } from '../cache/tree-kv-cache.js';
import { MAX_NODE_TOKENS, MAX_POOL_SLOTS, PagePool } from './page-pool.js';

/** Runs `work`, which must throw at once, and returns what it threw. */
function thrown(work: () => unknown): Error {
  const started = performance.now();
  try {
    work();
  } catch (error) {
    expect(performance.now() - started).toBeLessThan(1000);
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('page counts beyond 32-bit slots', () => {
  it('PagePool refuses more slots than 32-bit slot indices hold, naming the slots and the limit', () => {
    for (const [numPages, pageSize] of [
      [2 ** 33, 1], // used to end in RangeError: Invalid typed array length
      [2 ** 28, 16], // 2^32 slots: used to allocate 2 GiB of bookkeeping, then hand out unaddressable slots
    ] as const) {
      const error = thrown(() => new PagePool({ numPages, pageSize }));
      expect(CapacityError.isInstance(error), String(error)).toBe(true);
      expect(error.message).toContain(`${numPages * pageSize} slots`);
      expect(error.message).toContain(`limit of ${MAX_POOL_SLOTS}`);
      expect(error.message).toContain(`at most ${Math.floor(MAX_POOL_SLOTS / pageSize)} pages`);
    }
    // The largest pool of a page size is accepted (its bookkeeping is 8 bytes a page).
    expect(new PagePool({ numPages: 2, pageSize: 2 ** 30 }).numPages).toBe(2);
  });

  it('TreeKVCache refuses to grow a node past 2^31 - 1 tokens, before allocating, and changes nothing', () => {
    // 2^31 slots: a node holding all of them would overflow its 32-bit token count.
    const pool = new PagePool({ numPages: 2, pageSize: 2 ** 30 });
    const cache = new TreeKVCache({ pool });
    cache.addNode(0);
    const version = cache.version;
    const error = thrown(() => cache.appendTokens(0, MAX_NODE_TOKENS + 1));
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    expect(error.message).toContain(`${MAX_NODE_TOKENS + 1} tokens`);
    expect(error.message).toContain(`limit of ${MAX_NODE_TOKENS}`);
    expect(() => cache.pagesNeededToAppend(0, MAX_NODE_TOKENS + 1)).toThrow(CapacityError);
    expect(cache.tokenCount(0)).toBe(0);
    expect(cache.version).toBe(version);
    expect(pool.usedCount).toBe(0);
    // Appends up to the limit are sized as before.
    expect(cache.pagesNeededToAppend(0, MAX_NODE_TOKENS)).toBe(2);
  });
});
