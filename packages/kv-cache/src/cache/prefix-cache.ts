import { InvalidArgumentError, InvalidStateError } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import type { PagePool, PageReclaimer } from '../pool/page-pool.js';

/** One cached page: the tokens it holds (`1 ..= pageSize`) below the chain of pages before it. */
interface PrefixEntry {
  readonly parent: PrefixEntry | null;
  readonly key: string;
  readonly tokens: Int32Array;
  readonly page: number;
  readonly children: Map<string, PrefixEntry>;
}

/** A page of a token sequence offered to {@link PrefixCache.insert}. */
export interface PrefixBlock {
  /** Tokens of the page, `1 ..= pageSize` of them; only the last block of a chain may be partial. */
  readonly tokens: Int32Array;
  /** The page holding their KV (token `i` in slot `page * pageSize + i`). */
  readonly page: number;
}

/** What {@link PrefixCache.match} found. */
export interface PrefixMatch {
  /** `[ceil(tokenCount / pageSize)]` pages holding the KV of the matched tokens, in order. Not retained. */
  readonly pages: Int32Array;
  /** Leading tokens whose KV the pages hold. */
  readonly tokenCount: number;
}

/** Options of {@link PrefixCache}. */
export interface PrefixCacheOptions {
  readonly pool: PagePool;
  /** Most pages the cache keeps (default: the whole pool, so only allocation pressure evicts). */
  readonly budgetPages?: number;
}

const ROOT_KEY = '';

/**
 * A radix (prefix) cache of KV pages keyed by token sequences, as SGLang's radix cache does for page-aligned
 * prefixes: a finished request's pages stay cached so that a new request whose prompt starts with the same
 * tokens reuses them by reference instead of recomputing them.
 *
 * Entries form a trie of pages: a page's key is its tokens under the chain of pages before it, so a page is only
 * found for the exact same preceding tokens. Full pages chain further; a partial page (fewer than `pageSize`
 * tokens) ends its chain. A match may end inside a page (a common prefix of a cached page's tokens); the page is
 * then shared and the first writer copies it (copy-on-write in {@link TreeKVCache}).
 *
 * Every entry holds one reference to its page. Eviction is least-recently-used, leaves first (a page is always
 * used more recently than every page below it), when the cache exceeds its budget or the pool runs out of free
 * pages (the cache registers itself as the pool's {@link PageReclaimer}). Evicting an entry only drops the
 * cache's reference: pages still held by live tree nodes stay allocated and untouched.
 *
 * @example
 * ```ts
 * const pool = new PagePool({ numPages: 4096 });
 * const prefixCache = new PrefixCache({ pool, budgetPages: 1024 });
 * const cache = new TreeKVCache({ pool, prefixCache });
 * ```
 */
export class PrefixCache implements PageReclaimer {
  readonly pool: PagePool;
  private budget: number;
  private readonly root: PrefixEntry = {
    parent: null,
    key: ROOT_KEY,
    tokens: new Int32Array(0),
    page: -1,
    children: new Map(),
  };
  /** Entries in least-recently-used-first order. */
  private readonly recency = new Set<PrefixEntry>();
  private disposed = false;

  /**
   * @throws InvalidArgumentError unless `budgetPages` is an integer >= 0; InvalidStateError if the pool already
   *   has a prefix cache.
   */
  constructor(options: PrefixCacheOptions) {
    this.pool = options.pool;
    this.budget = assertInteger('budgetPages', options.budgetPages ?? options.pool.numPages, 0);
    this.pool.setReclaimer(this);
  }

  /** Pages held by the cache (one per entry). */
  get pageCount(): number {
    return this.recency.size;
  }

  /** Most pages the cache keeps. */
  get budgetPages(): number {
    return this.budget;
  }

  /**
   * Changes the budget, evicting least-recently-used pages down to it.
   * @throws InvalidArgumentError unless `budgetPages` is an integer >= 0.
   */
  setBudget(budgetPages: number): void {
    this.budget = assertInteger('budgetPages', budgetPages, 0);
    while (this.recency.size > this.budget) this.evictOldest();
  }

  /** Pages held by the cache, one entry each (a snapshot, for accounting and checks). */
  pages(): Int32Array {
    const result = new Int32Array(this.recency.size);
    let index = 0;
    for (const entry of this.recency) result[index++] = entry.page;
    return result;
  }

  /**
   * Finds the longest cached prefix of `tokens` (at most `limit` tokens) and marks it recently used.
   * The returned pages are not retained: retain them to keep them.
   *
   * @param tokens - `[n]` token ids of the new sequence.
   * @param limit - Most tokens to match (default `tokens.length`). A decoder that needs the logits of the last
   *   prompt token passes `tokens.length - 1` so at least that token is computed again.
   * @param options - `touch: false` looks without marking anything used (default `true`).
   * @throws InvalidArgumentError unless `limit` is an integer >= 0.
   */
  match(
    tokens: ArrayLike<number>,
    limit: number = tokens.length,
    options: { readonly touch?: boolean } = {},
  ): PrefixMatch {
    assertInteger('limit', limit, 0);
    const pageSize = this.pool.pageSize;
    const end = Math.min(limit, tokens.length);
    const pages: number[] = [];
    const path: PrefixEntry[] = [];
    let position = 0;
    let entry = this.root;
    while (position < end) {
      if (end - position >= pageSize) {
        const next = entry.children.get(keyOf(tokens, position, position + pageSize));
        if (next !== undefined) {
          pages.push(next.page);
          path.push(next);
          position += pageSize;
          entry = next;
          continue;
        }
      }
      // no full page: the child sharing the longest common prefix, if any
      let best: PrefixEntry | null = null;
      let bestLength = 0;
      const available = Math.min(pageSize, end - position);
      for (const child of entry.children.values()) {
        const length = Math.min(available, child.tokens.length);
        let common = 0;
        while (common < length && child.tokens[common] === tokens[position + common]) common++;
        if (common > bestLength) {
          best = child;
          bestLength = common;
        }
      }
      if (best !== null) {
        pages.push(best.page);
        path.push(best);
        position += bestLength;
      }
      break;
    }
    if (options.touch !== false)
      for (let index = path.length - 1; index >= 0; index--) this.touch(path[index]!);
    return { pages: Int32Array.from(pages), tokenCount: position };
  }

  /**
   * Caches a chain of pages holding a token sequence from its first token on. Pages already cached under the
   * same key are kept (and marked used) and the offered duplicate is not retained; new entries retain their page.
   * The budget is then enforced.
   *
   * @returns How many new entries were created.
   * @throws InvalidArgumentError (nothing changed) if a block holds no tokens, more than `pageSize`, or fewer
   *   before the last block, or names a free page.
   */
  insert(blocks: readonly PrefixBlock[]): number {
    this.checkNotDisposed();
    const pageSize = this.pool.pageSize;
    for (let index = 0; index < blocks.length; index++) {
      const block = blocks[index]!;
      const length = block.tokens.length;
      if (length < 1 || length > pageSize || (length < pageSize && index < blocks.length - 1)) {
        throw new InvalidArgumentError(
          `blocks[${index}] must hold 1..${pageSize} tokens, and only the last block may hold fewer than ${pageSize}; got ${length}`,
          { argument: `blocks[${index}].tokens`, expected: `1..${pageSize} tokens`, actual: length },
        );
      }
      if (this.pool.refcount(block.page) === 0) {
        throw new InvalidArgumentError(
          `blocks[${index}].page ${block.page} is free; cache only pages that hold written KV`,
          { argument: `blocks[${index}].page`, expected: 'an allocated page', actual: block.page },
        );
      }
    }
    let created = 0;
    let entry = this.root;
    const path: PrefixEntry[] = [];
    for (const block of blocks) {
      const key = keyOf(block.tokens, 0, block.tokens.length);
      let next = entry.children.get(key);
      if (next === undefined) {
        next = { parent: entry, key, tokens: block.tokens.slice(), page: block.page, children: new Map() };
        this.pool.retain(block.page);
        entry.children.set(key, next);
        created++;
      }
      path.push(next);
      entry = next;
    }
    for (let index = path.length - 1; index >= 0; index--) this.touch(path[index]!);
    while (this.recency.size > this.budget) this.evictOldest();
    return created;
  }

  /**
   * Evicts up to `count` least-recently-used entries (leaves first).
   * @returns How many pages became free.
   * @throws InvalidArgumentError unless `count` is an integer >= 1.
   */
  evict(count: number): number {
    assertInteger('count', count, 1);
    let freed = 0;
    for (let index = 0; index < count && this.recency.size > 0; index++) freed += this.evictOldest();
    return freed;
  }

  /** {@inheritDoc PageReclaimer.reclaimablePages} Entries whose page only the cache holds. */
  reclaimablePages(): number {
    let count = 0;
    for (const entry of this.recency) if (this.pool.refcount(entry.page) === 1) count++;
    return count;
  }

  /** {@inheritDoc PageReclaimer.reclaim} */
  reclaim(targetFree: number): void {
    while (this.pool.freeCount < targetFree && this.recency.size > 0) this.evictOldest();
  }

  /** Drops every entry (pages held by live nodes stay allocated). */
  clear(): void {
    while (this.recency.size > 0) this.evictOldest();
  }

  /** Clears the cache and unregisters it from the pool (idempotent). */
  dispose(): void {
    if (this.disposed) return;
    this.clear();
    this.pool.setReclaimer(null);
    this.disposed = true;
  }

  private checkNotDisposed(): void {
    if (this.disposed) {
      throw new InvalidStateError('the prefix cache was disposed; create a new PrefixCache for this pool', {
        argument: 'prefixCache',
      });
    }
  }

  private touch(entry: PrefixEntry): void {
    this.recency.delete(entry);
    this.recency.add(entry);
  }

  /** Evicts the least recently used entry (a leaf, since parents are always used after their children). */
  private evictOldest(): number {
    let victim: PrefixEntry | null = null;
    for (const entry of this.recency) {
      if (entry.children.size === 0) {
        victim = entry;
        break;
      }
    }
    if (victim === null) return 0;
    this.recency.delete(victim);
    victim.parent!.children.delete(victim.key);
    return this.pool.release(victim.page);
  }
}

function keyOf(tokens: ArrayLike<number>, start: number, end: number): string {
  let key = '';
  for (let index = start; index < end; index++) key += `${tokens[index]},`;
  return key;
}
