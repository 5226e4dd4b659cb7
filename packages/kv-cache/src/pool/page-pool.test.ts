import { CapacityError, InvalidArgumentError, InvalidStateError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { PagePool } from './page-pool.js';

describe('PagePool', () => {
  it('allocates in order, counts holders and frees pages nobody holds', () => {
    const pool = new PagePool({ numPages: 4 });
    expect(pool.pageSize).toBe(16);
    const pages = pool.allocate(3);
    expect(Array.from(pages)).toEqual([0, 1, 2]);
    expect(pool.usedCount).toBe(3);
    pool.retain(pages[0]!);
    expect(pool.refcount(0)).toBe(2);
    expect(pool.sharedCount).toBe(1);
    expect(pool.release(pages)).toBe(2);
    expect(pool.refcount(0)).toBe(1);
    expect(pool.sharedCount).toBe(0);
    expect(pool.freeCount).toBe(3);
    expect(pool.release(0)).toBe(1);
    expect(pool.freeCount).toBe(4);
  });

  it('throws typed errors and leaves state unchanged', () => {
    const pool = new PagePool({ numPages: 2, pageSize: 1 });
    const [page] = pool.allocate(1);
    expect(() => pool.allocate(2)).toThrow(CapacityError);
    expect(() => pool.allocate(2)).toThrow(/prune finished branches/);
    expect(pool.freeCount).toBe(1);
    expect(() => pool.allocate(0)).toThrow(InvalidArgumentError);
    expect(() => pool.allocate(-1)).toThrow(InvalidArgumentError);
    expect(() => pool.allocate(1.5)).toThrow(InvalidArgumentError);
    expect(() => pool.retain(1)).toThrow(InvalidStateError);
    expect(() => pool.release([page!, page!])).toThrow(/double free/);
    expect(pool.refcount(page!)).toBe(1);
    expect(() => pool.release(7)).toThrow(InvalidArgumentError);
    expect(() => new PagePool({ numPages: 0 })).toThrow(InvalidArgumentError);
    expect(() => new PagePool({ numPages: 4, pageSize: 0 })).toThrow(InvalidArgumentError);
    expect(() => new PagePool({ numPages: 4, pageSize: 2.5 })).toThrow(InvalidArgumentError);
    pool.release(page!);
    expect(() => pool.release(page!)).toThrow(InvalidStateError);
  });

  it('asks its reclaimer for pages only when that can satisfy the request', () => {
    const pool = new PagePool({ numPages: 3, pageSize: 1 });
    const held = pool.allocate(2);
    let reclaimed = 0;
    pool.setReclaimer({
      reclaimablePages: () => 1,
      reclaim: () => {
        reclaimed++;
        pool.release(held[0]!);
      },
    });
    expect(pool.available).toBe(2);
    expect(() => pool.allocate(3)).toThrow(CapacityError);
    expect(reclaimed).toBe(0);
    expect(pool.allocate(2).length).toBe(2);
    expect(reclaimed).toBe(1);
  });
});
