import { CapacityError, InvalidArgumentError, InvalidStateError } from '@deft/core';
import { assertInteger, describeValue } from '@deft/core/validate';

/**
 * Something that holds pages it can give back on demand (a prefix cache). A pool asks its reclaimer for pages
 * when an allocation would otherwise fail.
 */
export interface PageReclaimer {
  /** Pages that {@link PageReclaimer.reclaim} would free if asked to give back everything it can. */
  reclaimablePages(): number;
  /** Gives pages back until the pool has at least `targetFree` free pages, or nothing more can be given. */
  reclaim(targetFree: number): void;
}

/**
 * Most slots (`numPages × pageSize`) a pool may have: slots are 32-bit signed indices in page tables, plans and
 * backends, so slots `0 .. 2^31 - 1`.
 */
export const MAX_POOL_SLOTS = 2 ** 31;

/** Most tokens one node of a {@link TreeKVCache} may hold (its token count is a 32-bit signed integer). */
export const MAX_NODE_TOKENS = 2 ** 31 - 1;

/** Options of {@link PagePool}. */
export interface PagePoolOptions {
  /** Number of pages, an integer >= 1. */
  readonly numPages: number;
  /** Tokens per page, an integer >= 1 (default 16). */
  readonly pageSize?: number;
}

/**
 * A pool of fixed-size KV pages with reference counts. It holds no bytes: the bytes of page `p` live in a
 * backend's `KVStorage` at `[p, 0..pageSize)` of every layer; the pool only says which pages are in use and how
 * many holders each has.
 *
 * A page is free when its count is 0. {@link PagePool.allocate} is all-or-nothing: it either returns `count`
 * pages with count 1 or throws `CapacityError` and changes nothing (a registered {@link PageReclaimer} is asked
 * for pages first, and only when that can satisfy the request).
 *
 * @example
 * ```ts
 * const pool = new PagePool({ numPages: 1024, pageSize: 16 });
 * const pages = pool.allocate(3); // Int32Array [0, 1, 2]
 * pool.retain(pages[0]!);         // a second holder
 * pool.release(pages);            // page 0 still held once; pages 1 and 2 free again
 * ```
 */
export class PagePool {
  /** Number of pages. */
  readonly numPages: number;
  /** Tokens per page. */
  readonly pageSize: number;
  private readonly counts: Int32Array;
  private readonly freeStack: Int32Array;
  private freeTop: number;
  private shared = 0;
  private reclaimer: PageReclaimer | null = null;

  /**
   * Allocates 8 bytes of bookkeeping per page (the KV bytes live in a backend's storage).
   *
   * @throws InvalidArgumentError unless `numPages` and `pageSize` are integers >= 1.
   * @throws CapacityError, before allocating, when `numPages × pageSize` exceeds {@link MAX_POOL_SLOTS}.
   */
  constructor(options: PagePoolOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidArgumentError(
        `options must be { numPages, pageSize? }, got ${describeValue(options)}`,
        {
          argument: 'options',
          expected: '{ numPages, pageSize? }',
          actual: options,
        },
      );
    }
    this.numPages = assertInteger('numPages', options.numPages, 1);
    this.pageSize = assertInteger('pageSize', options.pageSize ?? 16, 1);
    const slots = this.numPages * this.pageSize;
    if (slots > MAX_POOL_SLOTS) {
      const fits = Math.floor(MAX_POOL_SLOTS / this.pageSize);
      throw new CapacityError(
        `a pool of ${this.numPages} pages of ${this.pageSize} tokens has ${slots} slots, above the limit of ` +
          `${MAX_POOL_SLOTS} of 32-bit slot indices; use at most ${fits} pages of this size`,
        { argument: 'numPages', expected: `<= ${fits}`, actual: this.numPages },
      );
    }
    this.counts = new Int32Array(this.numPages);
    this.freeStack = new Int32Array(this.numPages);
    // pages come out in increasing order: the stack top is page 0
    for (let index = 0; index < this.numPages; index++) this.freeStack[index] = this.numPages - 1 - index;
    this.freeTop = this.numPages;
  }

  /** Pages with no holder. */
  get freeCount(): number {
    return this.freeTop;
  }

  /** Pages with at least one holder. */
  get usedCount(): number {
    return this.numPages - this.freeTop;
  }

  /** Pages with more than one holder. */
  get sharedCount(): number {
    return this.shared;
  }

  /** Pages an allocation can get: free pages plus what the reclaimer can give back. */
  get available(): number {
    return this.freeTop + (this.reclaimer?.reclaimablePages() ?? 0);
  }

  /**
   * Registers the object asked for pages when an allocation would fail (one at a time; `null` removes it).
   * @throws InvalidStateError if another reclaimer is registered.
   */
  setReclaimer(reclaimer: PageReclaimer | null): void {
    if (reclaimer !== null && this.reclaimer !== null && this.reclaimer !== reclaimer) {
      throw new InvalidStateError(
        'this pool already has a reclaimer (a prefix cache); share that prefix cache instead of creating a second one',
        { argument: 'reclaimer' },
      );
    }
    this.reclaimer = reclaimer;
  }

  /**
   * Holders of a page (0 when free).
   * @throws InvalidArgumentError unless `page` is an integer in `[0, numPages)`.
   */
  refcount(page: number): number {
    this.checkPage('page', page);
    return this.counts[page]!;
  }

  /** A snapshot of the free pages `[freeCount]`, next to be allocated last. */
  freePages(): Int32Array {
    return this.freeStack.slice(0, this.freeTop);
  }

  /**
   * Takes `count` free pages, each with one holder.
   *
   * @returns `[count]` page ids.
   * @throws InvalidArgumentError unless `count` is an integer >= 1; CapacityError (nothing changed) if fewer
   *   than `count` pages are free even after reclaiming.
   */
  allocate(count: number): Int32Array {
    assertInteger('count', count, 1);
    if (count > this.freeTop) {
      const reclaimable = this.reclaimer?.reclaimablePages() ?? 0;
      if (count > this.freeTop + reclaimable) {
        throw new CapacityError(
          `cannot allocate ${count} KV pages: ${this.freeTop} free${reclaimable > 0 ? ` and ${reclaimable} reclaimable` : ''} of ${this.numPages}; prune finished branches, shrink the prefix cache, or create a larger pool`,
          { argument: 'count', expected: `<= ${this.freeTop + reclaimable}`, actual: count },
        );
      }
      this.reclaimer!.reclaim(count);
      if (count > this.freeTop) {
        throw new InvalidStateError(
          `the page reclaimer freed too few pages (${this.freeTop} free, ${count} needed); its reclaimablePages() overstates what it can free`,
          { argument: 'reclaimer', expected: count, actual: this.freeTop },
        );
      }
    }
    const pages = new Int32Array(count);
    for (let index = 0; index < count; index++) {
      const page = this.freeStack[--this.freeTop]!;
      this.counts[page] = 1;
      pages[index] = page;
    }
    return pages;
  }

  /**
   * Adds a holder to allocated pages (one per occurrence).
   * @throws InvalidArgumentError for an invalid page id; InvalidStateError (nothing changed) if a page is free.
   */
  retain(pages: number | ArrayLike<number>): void {
    const list = typeof pages === 'number' ? [pages] : pages;
    for (let index = 0; index < list.length; index++) {
      const page = list[index]!;
      this.checkPage(`pages[${index}]`, page);
      if (this.counts[page] === 0) {
        throw new InvalidStateError(
          `page ${page} is free and cannot be retained; allocate() pages before sharing them`,
          { argument: 'pages', expected: 'allocated pages', actual: page },
        );
      }
    }
    for (let index = 0; index < list.length; index++) {
      const page = list[index]!;
      if (this.counts[page] === 1) this.shared++;
      this.counts[page]!++;
    }
  }

  /**
   * Removes a holder from pages (one per occurrence); pages left with no holder become free.
   *
   * @returns How many pages became free.
   * @throws InvalidArgumentError for an invalid page id; InvalidStateError (nothing changed) if a page would be
   *   released more times than it is held (a double free).
   */
  release(pages: number | ArrayLike<number>): number {
    const list = typeof pages === 'number' ? [pages] : pages;
    let occurrences: Map<number, number> | null = null;
    for (let index = 0; index < list.length; index++) {
      const page = list[index]!;
      this.checkPage(`pages[${index}]`, page);
      let times = 1;
      if (list.length > 1) {
        occurrences ??= new Map();
        times = (occurrences.get(page) ?? 0) + 1;
        occurrences.set(page, times);
      }
      if (this.counts[page]! < times) {
        throw new InvalidStateError(
          `page ${page} is released more times than it is held (double free); release each page once per retain/allocate`,
          { argument: 'pages', expected: `at most ${this.counts[page]} release(s)`, actual: times },
        );
      }
    }
    let freed = 0;
    for (let index = 0; index < list.length; index++) {
      const page = list[index]!;
      const count = --this.counts[page]!;
      if (count === 1) this.shared--;
      if (count === 0) {
        this.freeStack[this.freeTop++] = page;
        freed++;
      }
    }
    return freed;
  }

  private checkPage(argument: string, page: unknown): void {
    if (typeof page !== 'number' || !Number.isInteger(page) || page < 0 || page >= this.numPages) {
      throw new InvalidArgumentError(
        `${argument} must be a page id in [0, ${this.numPages}), got ${describeValue(page)}`,
        { argument, expected: `integer in [0, ${this.numPages})`, actual: page },
      );
    }
  }
}
