import type { Backend, KVStorage, PagedTreeView } from '@deft/core';
import {
  CapacityError,
  DisposedError,
  InvalidArgumentError,
  InvalidStateError,
  NotFoundError,
} from '@deft/core';
import { assertInteger, describeValue } from '@deft/core/validate';
import type { CommitResult, TokenTree, TreeChange, TreeTopologyView } from '@deft/tree';
import { TreeTopology } from '@deft/tree';
import { MAX_NODE_TOKENS, type PagePool } from '../pool/page-pool.js';
import { growInt32 } from './grow-int32.js';
import type { PrefixBlock, PrefixCache } from './prefix-cache.js';
import type { SlotMoves } from './slot-moves.js';

const NONE = -1;
const EMPTY = new Int32Array(0);

/** Options of {@link TreeKVCache}. */
export interface TreeKVCacheOptions {
  /** Where pages come from; may be shared by many caches (one per request). */
  readonly pool: PagePool;
  /** Radix cache for prefix reuse across requests (must use the same pool). */
  readonly prefixCache?: PrefixCache;
  /**
   * Performs copy-on-write page copies (`copyPages(storage, source, target)`); give it with `storage`.
   * Without one, copy-on-write only remaps pages (for tests and host-side planning).
   */
  readonly backend?: Pick<Backend, 'copyPages'>;
  /** The KV bytes the pool's pages index; required with `backend`. */
  readonly storage?: KVStorage;
  /** Receives the token KV copies a commit needs (see {@link SlotMoves}). */
  readonly onSlotMoves?: (moves: SlotMoves) => void;
}

/** The parts of a {@link CommitResult} the cache needs. */
export type CommitChange = Pick<CommitResult, 'into' | 'merged' | 'acceptedCounts' | 'removed'>;

/** Options of {@link TreeKVCache.attach}. */
export interface AttachOptions {
  /**
   * Most prompt tokens taken from the prefix cache (default `promptLength - 1`, so the last prompt token is
   * always computed again and its logits are available).
   */
  readonly maxReusedTokens?: number;
}

/**
 * The paged KV cache of a token tree: for every node, its ordered pages and how many tokens it holds (token `i`
 * of node `n` is in slot `pages(n)[floor(i / pageSize)] * pageSize + i % pageSize`). A child starts on a fresh
 * page, so a prefix is shared by its descendants by reference and never copied.
 *
 * Use it either explicitly (`addNode`, `appendTokens`, `removeNodes`, `applyCommit`, with the same ids as your
 * tree) or let it follow a {@link TokenTree} with {@link TreeKVCache.attach}: then every fork, append, prune
 * and commit of the tree updates the cache, and a change the pool cannot hold is vetoed before the tree changes.
 *
 * **Topology.** The cache keeps per-node page data only (pages, tokens with KV); who is whose parent is read from
 * a {@link TreeTopologyView}: the attached tree's own ({@link TokenTree.topology}), never a mirrored copy, or,
 * when used without a tree, one the cache owns. While attached, change the shape through the tree:
 * `addNode`, `removeNodes` and `applyCommit` then throw.
 *
 * Pages come from a {@link PagePool} (shared by many caches); a page is freed when its last holder (a node or a
 * prefix-cache entry) lets go. Appending to a node whose last page is partly filled and shared copies that page
 * first (copy-on-write). Every operation is all-or-nothing: on error nothing changed.
 *
 * @example
 * ```ts
 * const pool = new PagePool({ numPages: 4096, pageSize: 16 });
 * const tree = TokenTree.create(prompt);
 * const cache = new TreeKVCache({ pool, backend, storage });
 * cache.attach(tree);
 * backend.writeKV(storage, layer, cache.slotsOf(tree.root), k, v); // prefill
 * const [a, b] = tree.fork(tree.root, 2);
 * tree.append(a!, token);                  // allocates a page for a
 * const slot = cache.slotsOf(a!, 0, 1);    // where to write its K/V
 * const plan = planTreeAttention(cache.view(), tree.queries(), { shape });
 * ```
 */
export class TreeKVCache {
  /** The pool pages come from. */
  readonly pool: PagePool;
  /** Tokens per page. */
  readonly pageSize: number;
  private readonly prefixCache: PrefixCache | null;
  private readonly backend: Pick<Backend, 'copyPages'> | null;
  private readonly storage: KVStorage | null;
  private readonly onSlotMoves: ((moves: SlotMoves) => void) | null;

  /** The topology the cache changes itself when used without a tree; `null` while attached. */
  private ownTopology: TreeTopology | null = new TreeTopology();
  /** Where the shape is read: `ownTopology`, or the attached tree's topology. */
  private topology: TreeTopologyView = this.ownTopology!;
  /** `[>= idLimit]` tokens with KV of each node (0 for ids not in the cache). */
  private tokenCountColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  /** `[>= idLimit]` pages in use at the start of each node's page list. */
  private pageCountColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  private pageLists: (Int32Array | undefined)[] = [];
  private changeVersion = 0;
  private isDisposed = false;

  private attachedTree: TokenTree | null = null;
  private unsubscribe: (() => void)[] = [];

  private viewVersion = -1;
  private pagesDirty = true;
  /** The id limit `indptrBuffer` was built for. */
  private pagesIdLimit = -1;
  private indptrBuffer: Int32Array<ArrayBuffer> = new Int32Array(0);
  private pagesBuffer: Int32Array<ArrayBuffer> = new Int32Array(0);
  private pagesLength = 0;
  private cachedView: PagedTreeView | null = null;

  /**
   * @throws InvalidArgumentError if `backend` comes without `storage` (or the reverse), the storage's page size
   *   differs from the pool's or it has fewer pages, or the prefix cache uses another pool.
   */
  constructor(options: TreeKVCacheOptions) {
    if (typeof options !== 'object' || options === null || typeof options.pool !== 'object') {
      throw new InvalidArgumentError(`options must be { pool, … }, got ${describeValue(options)}`, {
        argument: 'options',
        expected: '{ pool: PagePool, prefixCache?, backend?, storage?, onSlotMoves? }',
        actual: options,
      });
    }
    this.pool = options.pool;
    this.pageSize = options.pool.pageSize;
    this.prefixCache = options.prefixCache ?? null;
    if (this.prefixCache !== null && this.prefixCache.pool !== this.pool) {
      throw new InvalidArgumentError(
        'prefixCache must use the same pool as the cache; create it with { pool }',
        {
          argument: 'prefixCache',
        },
      );
    }
    if ((options.backend === undefined) !== (options.storage === undefined)) {
      throw new InvalidArgumentError(
        'pass backend and storage together (copy-on-write copies pages in storage)',
        {
          argument: options.backend === undefined ? 'backend' : 'storage',
          expected: 'both or neither',
        },
      );
    }
    this.backend = options.backend ?? null;
    this.storage = options.storage ?? null;
    if (this.storage !== null) {
      const descriptor = this.storage.descriptor;
      if (descriptor.pageSize !== this.pageSize || descriptor.numPages < this.pool.numPages) {
        throw new InvalidArgumentError(
          `storage holds ${descriptor.numPages} pages of ${descriptor.pageSize} tokens but the pool has ${this.pool.numPages} pages of ${this.pageSize}; create the storage from the pool's numPages and pageSize`,
          {
            argument: 'storage',
            expected: `pageSize ${this.pageSize}, numPages >= ${this.pool.numPages}`,
            actual: descriptor,
          },
        );
      }
    }
    this.onSlotMoves = options.onSlotMoves ?? null;
  }

  /** Incremented by every change; {@link TreeKVCache.view} is rebuilt only when it moved. */
  get version(): number {
    return this.changeVersion;
  }

  /** Number of nodes in the cache. */
  get nodeCount(): number {
    return this.topology.nodeCount;
  }

  /** True after {@link TreeKVCache.dispose}. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /** The tree the cache follows, if attached. */
  get tree(): TokenTree | null {
    return this.attachedTree;
  }

  /** True if `node` is in the cache. */
  has(node: number): boolean {
    return this.topology.has(node);
  }

  /**
   * Tokens the node holds in the cache.
   * @throws NotFoundError if the node is not in the cache.
   */
  tokenCount(node: number): number {
    this.requireNode('node', node);
    return this.tokenCountColumn[node]!;
  }

  /**
   * The node's pages in token order, a copy `[ceil(tokenCount / pageSize)]`.
   * @throws NotFoundError if the node is not in the cache.
   */
  pagesOf(node: number): Int32Array {
    this.requireNode('node', node);
    return (this.pageLists[node] ?? EMPTY).slice(0, this.pageCountColumn[node]!);
  }

  /**
   * Slots of the node's tokens `start .. end - 1` (default: all): where their K and V live in every layer.
   *
   * @returns `[end - start]` slots, `page * pageSize + offset`.
   * @throws NotFoundError if the node is not in the cache; InvalidArgumentError for a bad range.
   * @example
   * ```ts
   * const newSlots = cache.slotsOf(leaf, cache.tokenCount(leaf) - 1); // the last token's slot
   * ```
   */
  slotsOf(node: number, start = 0, end?: number): Int32Array {
    this.requireNode('node', node);
    const count = this.tokenCountColumn[node]!;
    const stop = end ?? count;
    assertInteger('start', start, 0);
    assertInteger('end', stop, start);
    if (stop > count) {
      throw new InvalidArgumentError(`end must be at most the node's ${count} tokens, got ${stop}`, {
        argument: 'end',
        expected: `<= ${count}`,
        actual: stop,
      });
    }
    const pages = this.pageLists[node] ?? EMPTY;
    const pageSize = this.pageSize;
    const slots = new Int32Array(stop - start);
    for (let index = start; index < stop; index++) {
      slots[index - start] = pages[Math.floor(index / pageSize)]! * pageSize + (index % pageSize);
    }
    return slots;
  }

  /**
   * Adds an empty node below `parent` (after its existing children), or a new root with `parent = -1`.
   * @throws InvalidArgumentError for a bad id; InvalidStateError if `node` is already in the cache or the cache
   *   is attached to a tree (fork the tree instead); NotFoundError if `parent` is not in the cache.
   */
  addNode(node: number, parent = NONE): void {
    this.checkNotDisposed();
    assertInteger('node', node, 0);
    if (this.has(node)) {
      throw new InvalidStateError(
        `node ${node} is already in the cache; ids must be unique (never reuse an id)`,
        {
          argument: 'node',
          expected: 'a new id',
          actual: node,
        },
      );
    }
    if (parent !== NONE) this.requireNode('parent', parent);
    const topology = this.requireOwnTopology('addNode');
    this.ensureColumns(node + 1);
    this.clearPageData(node);
    topology.add(node, parent);
    this.changeVersion++;
  }

  /**
   * Pages needed to append `count` tokens to `node` (new pages plus a copy-on-write copy if its partly filled
   * last page is shared). Compare with `pool.available`.
   * @throws NotFoundError if the node is not in the cache; InvalidArgumentError unless `count` is an integer >= 1;
   *   CapacityError if the node would hold more than `MAX_NODE_TOKENS` (2^31 - 1) tokens.
   */
  pagesNeededToAppend(node: number, count: number): number {
    this.requireNode('node', node);
    assertInteger('count', count, 1);
    return this.appendPlan(node, count).pages;
  }

  /**
   * Makes room for `count` more tokens of a leaf and returns the slots to write their K and V into.
   *
   * @returns `[count]` slots in token order.
   * @throws NotFoundError if the node is not in the cache; InvalidStateError if it has children;
   *   InvalidArgumentError unless `count` is an integer >= 1; CapacityError if the pool is out of pages or the
   *   node would hold more than `MAX_NODE_TOKENS` (2^31 - 1) tokens (nothing changed).
   * @example
   * ```ts
   * const slots = cache.appendTokens(leaf, 1);
   * backend.writeKV(storage, layer, slots, k, v);
   * ```
   */
  appendTokens(node: number, count: number): Int32Array {
    this.checkNotDisposed();
    this.requireNode('node', node);
    assertInteger('count', count, 1);
    this.requireLeaf(node);
    return this.growNode(node, count);
  }

  /** Appends `count` tokens' pages to a node (checked by the caller) and returns their slots. */
  private growNode(node: number, count: number): Int32Array {
    const plan = this.appendPlan(node, count);
    const fresh =
      plan.pages > 0 ? this.allocate(plan.pages, `append ${count} token(s) to node ${node}`) : EMPTY;
    let used = 0;
    const start = this.tokenCountColumn[node]!;
    if (plan.copyOnWrite) {
      const last = this.pageCountColumn[node]! - 1;
      const old = this.pageLists[node]![last]!;
      if (this.pool.refcount(old) > 1) {
        const copy = fresh[used++]!;
        this.copyPage(old, copy);
        this.pageLists[node]![last] = copy;
        this.pool.release(old);
      }
    }
    const pagesAfter = Math.ceil((start + count) / this.pageSize);
    for (let index = this.pageCountColumn[node]!; index < pagesAfter; index++)
      this.pushPage(node, fresh[used++]!);
    if (used < fresh.length) this.pool.release(fresh.subarray(used));
    this.tokenCountColumn[node] = start + count;
    if (plan.pages > 0) this.pagesDirty = true;
    this.changeVersion++;
    return this.slotsOf(node, start);
  }

  /**
   * Removes nodes and releases their pages (a page is freed when nobody else holds it). The set must contain
   * every descendant of each of its nodes, as {@link TokenTree.prune} reports.
   *
   * @throws NotFoundError if an id is not in the cache; InvalidArgumentError for a duplicate or bad id;
   *   InvalidStateError if a node's child is missing from the set, or the cache is attached to a tree (prune
   *   the tree instead) (nothing changed).
   */
  removeNodes(ids: ArrayLike<number>): void {
    this.checkNotDisposed();
    const set = new Set<number>();
    for (let index = 0; index < ids.length; index++) {
      const id = ids[index]!;
      this.requireNode(`ids[${index}]`, id);
      if (set.has(id)) {
        throw new InvalidArgumentError(`ids[${index}] (${id}) appears twice; list each node once`, {
          argument: `ids[${index}]`,
          expected: 'unique ids',
          actual: id,
        });
      }
      set.add(id);
    }
    const view = this.topology;
    for (const id of set) {
      for (let child = view.firstChildOf(id); child !== NONE; child = view.nextSiblingOf(child)) {
        if (!set.has(child)) {
          throw new InvalidStateError(
            `node ${id} has child ${child} that is not being removed; remove whole subtrees (pass what tree.prune() returned)`,
            { argument: 'ids', expected: `to include ${child}`, actual: id },
          );
        }
      }
    }
    if (set.size === 0) return;
    const topology = this.requireOwnTopology('removeNodes');
    const removed = Array.from(set);
    this.releaseNodes(removed);
    topology.remove(removed);
    this.changeVersion++;
  }

  /**
   * Follows {@link TokenTree.commitPath}: the accepted tokens of `merged` become tokens of `into` (whole pages
   * are adopted by reference when `into` ends on a page boundary; other tokens are copied into `into`'s pages),
   * then every descendant of `into` is removed.
   *
   * @returns The token copies to perform (also passed to `onSlotMoves`); empty when pages could be adopted.
   * @throws NotFoundError / InvalidArgumentError if the change does not match the cache's nodes;
   *   InvalidStateError if the cache is attached to a tree (commit on the tree instead);
   *   CapacityError if the pool cannot hold the result (nothing changed).
   * @example
   * ```ts
   * const result = tree.commitPath(deepest, accepted, base);
   * const moves = cache.applyCommit(result);
   * ```
   */
  applyCommit(change: CommitChange): SlotMoves {
    this.checkNotDisposed();
    this.validateCommit(change);
    const topology = this.requireOwnTopology('applyCommit');
    const removed = topology.subtree(change.into, false);
    const slotMoves = this.commitPages(change, removed);
    topology.remove(removed);
    this.changeVersion++;
    return slotMoves;
  }

  /**
   * The page side of a commit: rewrites `into`'s pages, reports the token moves, and releases the pages of
   * `removed` (every descendant of `into`). Nothing changes if the pool cannot hold the result.
   */
  private commitPages(change: CommitChange, removed: ArrayLike<number>): SlotMoves {
    const needed = this.commitPlan(change, null).pages;
    const fresh = needed > 0 ? this.allocate(needed, `commit into node ${change.into}`) : EMPTY;
    const moves = this.commitPlan(change, fresh);
    if (moves.used < fresh.length) this.pool.release(fresh.subarray(moves.used));
    const slotMoves: SlotMoves = { source: moves.source, target: moves.target };
    if (slotMoves.source.length > 0) this.onSlotMoves?.(slotMoves);
    this.releaseNodes(removed);
    return slotMoves;
  }

  /**
   * Gives an empty root the pages of the longest cached prefix of `tokens` (by reference).
   *
   * @param limit - Most tokens to reuse (default `tokens.length`).
   * @returns How many leading tokens now have KV; append the rest with {@link TreeKVCache.appendTokens}.
   * @throws InvalidStateError without a prefix cache, or unless `node` is an empty root without children.
   */
  reusePrefix(node: number, tokens: ArrayLike<number>, limit: number = tokens.length): number {
    this.checkNotDisposed();
    this.requireNode('node', node);
    const prefixCache = this.requirePrefixCache();
    if (
      this.topology.parentOf(node) !== NONE ||
      this.tokenCountColumn[node] !== 0 ||
      this.topology.firstChildOf(node) !== NONE
    ) {
      throw new InvalidStateError(
        `node ${node} must be an empty root without children to reuse a cached prefix; call reusePrefix right after addNode(node)`,
        { argument: 'node', expected: 'an empty root', actual: node },
      );
    }
    return this.adoptPrefix(node, prefixCache, tokens, limit);
  }

  /** Gives the empty `node` the pages of the longest cached prefix of `tokens` (at most `limit` tokens). */
  private adoptPrefix(
    node: number,
    prefixCache: PrefixCache,
    tokens: ArrayLike<number>,
    limit: number,
  ): number {
    const match = prefixCache.match(tokens, limit);
    if (match.tokenCount === 0) return 0;
    this.pool.retain(match.pages);
    for (const page of match.pages) this.pushPage(node, page);
    this.tokenCountColumn[node] = match.tokenCount;
    this.pagesDirty = true;
    this.changeVersion++;
    return match.tokenCount;
  }

  /**
   * Offers the pages on the path root..node to the prefix cache, keyed by the path's tokens, so a later request
   * with the same prefix reuses them. Pages are offered from the start while the path stays page-aligned: a
   * node starting in the middle of a page (its parent ended in a partly filled page) and everything below it
   * cannot be reused by a prompt and are skipped.
   *
   * @param tokens - `[pathTokenCount]` the path's tokens (default: read from the attached tree).
   * @returns How many new prefix-cache entries were created.
   * @throws InvalidStateError without a prefix cache, or without tokens when not attached;
   *   InvalidArgumentError if `tokens` does not match the path's length.
   */
  cachePath(node: number, tokens?: ArrayLike<number>): number {
    this.checkNotDisposed();
    this.requireNode('node', node);
    const prefixCache = this.requirePrefixCache();
    let sequence = tokens;
    if (sequence === undefined) {
      if (this.attachedTree === null) {
        throw new InvalidStateError('pass the path tokens, or attach() the cache to its tree first', {
          argument: 'tokens',
        });
      }
      sequence = this.attachedTree.pathTokens(node);
    }
    const path: number[] = [];
    let total = 0;
    for (let id = node; id !== NONE; id = this.topology.parentOf(id)) {
      path.push(id);
      total += this.tokenCountColumn[id]!;
    }
    if (sequence.length !== total) {
      throw new InvalidArgumentError(
        `tokens must hold the ${total} tokens of the path to node ${node}, got ${sequence.length}; pass tree.pathTokens(node)`,
        { argument: 'tokens', expected: total, actual: sequence.length },
      );
    }
    path.reverse();
    const pageSize = this.pageSize;
    const blocks: PrefixBlock[] = [];
    let position = 0;
    walk: for (const id of path) {
      if (position % pageSize !== 0) break;
      const count = this.tokenCountColumn[id]!;
      const pages = this.pageLists[id] ?? EMPTY;
      for (let index = 0; index * pageSize < count; index++) {
        const length = Math.min(pageSize, count - index * pageSize);
        const start = position + index * pageSize;
        blocks.push({
          tokens: Int32Array.from({ length }, (_, offset) => sequence[start + offset]!),
          page: pages[index]!,
        });
        if (length < pageSize) break walk;
      }
      position += count;
    }
    return blocks.length > 0 ? prefixCache.insert(blocks) : 0;
  }

  /**
   * The cache as the planner reads it ({@link PagedTreeView}; `order` lists every root's subtree in depth-first
   * pre-order, roots in creation order). Arrays are reused: the view is valid until the next change and is
   * rebuilt only when {@link TreeKVCache.version} moved (only the parts that changed).
   */
  view(): PagedTreeView {
    if (this.cachedView !== null && this.viewVersion === this.changeVersion) return this.cachedView;
    const topology = this.topology;
    const numIds = topology.idLimit;
    this.ensureColumns(numIds);
    if (this.pagesDirty || this.pagesIdLimit !== numIds) this.rebuildPages(numIds);
    this.cachedView = {
      pageSize: this.pageSize,
      parent: topology.parents(),
      tokenCount: this.tokenCountColumn.subarray(0, numIds),
      pageIndptr: this.indptrBuffer.subarray(0, numIds + 1),
      pages: this.pagesBuffer.subarray(0, this.pagesLength),
      order: topology.order(),
    };
    this.viewVersion = this.changeVersion;
    return this.cachedView;
  }

  /**
   * Makes the (empty) cache follow a token tree: every existing node is added and given pages for its tokens
   * (the root first reuses a cached prefix when a prefix cache is configured), and from then on every change
   * of the tree updates the cache. A change the pool cannot hold (or a commit that needs token copies without
   * `onSlotMoves`) is vetoed: the tree throws and stays unchanged.
   *
   * Write the KV of the existing tokens (`slotsOf(node, reused)` for the root) before attention reads them.
   *
   * @returns How many prompt tokens already have KV from the prefix cache.
   * @throws InvalidStateError if the cache is not empty or already attached; CapacityError (nothing changed)
   *   if the tree's tokens do not fit.
   */
  attach(tree: TokenTree, options: AttachOptions = {}): { reusedTokens: number } {
    this.checkNotDisposed();
    if (this.attachedTree !== null || this.topology.nodeCount > 0) {
      throw new InvalidStateError(
        'attach() needs an empty, unattached cache; create one TreeKVCache per tree',
        {
          argument: 'tree',
        },
      );
    }
    const order = tree.dfsOrder();
    this.checkAttachCapacity(tree, order, options);
    const ownTopology = this.ownTopology!;
    this.ensureColumns(tree.topology.idLimit);
    this.topology = tree.topology;
    this.ownTopology = null;
    this.changeVersion++;
    let reusedTokens = 0;
    try {
      for (const id of order) {
        const count = tree.tokenCount(id);
        let reused = 0;
        if (id === tree.root && this.prefixCache !== null && count > 0) {
          const limit = options.maxReusedTokens ?? count - 1;
          assertInteger('maxReusedTokens', limit, 0);
          reused = this.adoptPrefix(id, this.prefixCache, tree.tokens(id), Math.min(limit, count));
          reusedTokens = reused;
        }
        if (count > reused) this.growNode(id, count - reused);
      }
    } catch (error) {
      this.releaseNodes(order);
      this.topology = ownTopology;
      this.ownTopology = ownTopology;
      this.changeVersion++;
      throw error;
    }
    this.attachedTree = tree;
    this.unsubscribe = [
      tree.on('beforeChange', (change) => this.checkTreeChange(change)),
      tree.on('change', (change) => this.applyTreeChange(change)),
    ];
    return { reusedTokens };
  }

  /** Stops following the tree (the cache keeps its nodes and pages). Does nothing when not attached. */
  detach(): void {
    this.unsubscribeTree();
    if (this.ownTopology === null) {
      this.ownTopology = this.attachedTree!.topology.clone();
      this.topology = this.ownTopology;
    }
    this.attachedTree = null;
  }

  /** Detaches and releases every page the cache holds (idempotent). Later use throws `DisposedError`. */
  dispose(): void {
    if (this.isDisposed) return;
    this.unsubscribeTree();
    this.attachedTree = null;
    for (let id = 0; id < this.topology.idLimit; id++) {
      const count = this.pageCountColumn[id]!;
      if (count > 0) this.pool.release(this.pageLists[id]!.subarray(0, count));
    }
    this.pageCountColumn.fill(0);
    this.tokenCountColumn.fill(0);
    this.pageLists = [];
    this.ownTopology = new TreeTopology();
    this.topology = this.ownTopology;
    this.changeVersion++;
    this.isDisposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- tree following ----

  /** Throws `CapacityError` before anything changes (the prefix cache's order included) if the tree cannot fit. */
  private checkAttachCapacity(tree: TokenTree, order: Int32Array, options: AttachOptions): void {
    const pageSize = this.pageSize;
    let needed = 0;
    let exclusiveReused = 0;
    for (const id of order) {
      const count = tree.tokenCount(id);
      let reused = 0;
      if (id === tree.root && this.prefixCache !== null && count > 0) {
        const limit = options.maxReusedTokens ?? count - 1;
        assertInteger('maxReusedTokens', limit, 0);
        const match = this.prefixCache.match(tree.tokens(id), Math.min(limit, count), { touch: false });
        reused = match.tokenCount;
        // reused pages only the prefix cache holds stop being reclaimable once the root holds them
        for (const page of match.pages) if (this.pool.refcount(page) === 1) exclusiveReused++;
      }
      const fill = reused % pageSize;
      const rest = count - reused;
      if (rest <= 0) continue;
      needed +=
        fill === 0
          ? Math.ceil(rest / pageSize)
          : 1 + Math.ceil(Math.max(0, rest - (pageSize - fill)) / pageSize);
    }
    const available = this.pool.available - exclusiveReused;
    if (needed > this.pool.freeCount && needed > available) {
      throw new CapacityError(
        `cannot attach the tree: its ${tree.totalTokens} tokens need ${needed} KV page(s) but only ${available} can be had; finish other requests or use a larger pool`,
        { argument: 'tree', expected: `<= ${available} pages`, actual: needed },
      );
    }
  }

  private checkTreeChange(change: TreeChange): void {
    if (change.type === 'append') {
      const needed = this.appendPlan(change.node, change.tokens.length).pages;
      this.checkAvailable(needed, `append ${change.tokens.length} token(s) to node ${change.node}`);
    } else if (change.type === 'commit') {
      const plan = this.commitPlan(change, null);
      this.checkAvailable(plan.pages, `commit into node ${change.into}`);
      if (plan.moves > 0 && this.onSlotMoves === null) {
        throw new InvalidStateError(
          `this commit must copy ${plan.moves} token(s) of KV into node ${change.into}; create the TreeKVCache with onSlotMoves to perform the copies`,
          { argument: 'onSlotMoves' },
        );
      }
    }
  }

  /** Runs after the tree (and so the topology the cache reads) changed: only page data is left to follow. */
  private applyTreeChange(change: TreeChange): void {
    switch (change.type) {
      case 'fork':
        this.ensureColumns(this.topology.idLimit);
        for (const child of change.children) this.clearPageData(child);
        break;
      case 'append':
        this.growNode(change.node, change.tokens.length);
        break;
      case 'prune':
        this.releaseNodes(change.removed);
        break;
      case 'commit':
        this.commitPages(change, change.removed);
        break;
    }
    this.changeVersion++;
  }

  private unsubscribeTree(): void {
    for (const stop of this.unsubscribe) stop();
    this.unsubscribe = [];
  }

  // ---- internals ----

  private checkNotDisposed(): void {
    if (this.isDisposed) throw new DisposedError('TreeKVCache');
  }

  private requireNode(argument: string, node: unknown): asserts node is number {
    if (typeof node !== 'number' || !Number.isInteger(node)) {
      throw new InvalidArgumentError(`${argument} must be an integer node id, got ${describeValue(node)}`, {
        argument,
        expected: 'integer node id',
        actual: node,
      });
    }
    if (!this.has(node)) {
      throw new NotFoundError(
        `${argument} ${node} is not in the KV cache (never added, or removed); add it with addNode() or use an id of the attached tree`,
        { argument, expected: 'a node in the cache', actual: node },
      );
    }
  }

  private requireLeaf(node: number): void {
    if (this.topology.firstChildOf(node) !== NONE) {
      throw new InvalidStateError(
        `node ${node} has children, so its tokens are frozen; append to a leaf, or remove its children first`,
        { argument: 'node', expected: 'a leaf', actual: node },
      );
    }
  }

  private requireOwnTopology(operation: string): TreeTopology {
    if (this.ownTopology === null) {
      throw new InvalidStateError(
        `${operation}() changes the cache's own nodes, but the cache follows a tree; fork, prune or commit the tree instead (or detach() first)`,
        { argument: 'tree' },
      );
    }
    return this.ownTopology;
  }

  private requirePrefixCache(): PrefixCache {
    if (this.prefixCache === null) {
      throw new InvalidStateError('this cache has no prefix cache; create it with { pool, prefixCache }', {
        argument: 'prefixCache',
      });
    }
    return this.prefixCache;
  }

  private checkAvailable(pages: number, what: string): void {
    if (pages <= this.pool.freeCount) return;
    if (pages > this.pool.available) {
      throw new CapacityError(
        `cannot ${what}: it needs ${pages} KV page(s) but only ${this.pool.available} can be had; prune finished branches or use a larger pool`,
        { argument: 'pages', expected: `<= ${this.pool.available}`, actual: pages },
      );
    }
  }

  private allocate(pages: number, what: string): Int32Array {
    this.checkAvailable(pages, what);
    return this.pool.allocate(pages);
  }

  private copyPage(source: number, target: number): void {
    if (this.backend !== null && this.storage !== null) {
      this.backend.copyPages(this.storage, Int32Array.of(source), Int32Array.of(target));
    }
  }

  /** Makes the page-data columns at least `length` long (new entries: no tokens, no pages). */
  private ensureColumns(length: number): void {
    if (this.tokenCountColumn.length >= length) return;
    this.tokenCountColumn = growInt32(this.tokenCountColumn, length);
    this.pageCountColumn = growInt32(this.pageCountColumn, length);
  }

  private clearPageData(node: number): void {
    this.tokenCountColumn[node] = 0;
    this.pageCountColumn[node] = 0;
    this.pageLists[node] = undefined;
  }

  /** Releases the pages of nodes leaving the cache and clears their page data. */
  private releaseNodes(ids: ArrayLike<number>): void {
    for (let index = 0; index < ids.length; index++) {
      const id = ids[index]!;
      const count = this.pageCountColumn[id]!;
      if (count > 0) this.pool.release(this.pageLists[id]!.subarray(0, count));
      this.clearPageData(id);
    }
    if (ids.length > 0) this.pagesDirty = true;
  }

  private pushPage(node: number, page: number): void {
    const count = this.pageCountColumn[node]!;
    let list = this.pageLists[node];
    if (list === undefined || list.length === count) {
      const grown = new Int32Array(Math.max(4, count * 2));
      if (list !== undefined) grown.set(list);
      list = grown;
      this.pageLists[node] = list;
    }
    list[count] = page;
    this.pageCountColumn[node] = count + 1;
  }

  /** Pages an append needs; throws `CapacityError` when the node would exceed {@link MAX_NODE_TOKENS}. */
  private appendPlan(node: number, count: number): { pages: number; copyOnWrite: boolean } {
    const pageSize = this.pageSize;
    const tokens = this.tokenCountColumn[node]!;
    if (tokens + count > MAX_NODE_TOKENS) {
      throw new CapacityError(
        `cannot append ${count} token(s) to node ${node}: it would hold ${tokens + count} tokens, above the limit ` +
          `of ${MAX_NODE_TOKENS} tokens a node can count; split the sequence over several nodes`,
        { argument: 'count', expected: `<= ${MAX_NODE_TOKENS - tokens}`, actual: count },
      );
    }
    const fill = tokens % pageSize;
    if (fill === 0) return { pages: Math.ceil(count / pageSize), copyOnWrite: false };
    const last = this.pageLists[node]![this.pageCountColumn[node]! - 1]!;
    const copyOnWrite = this.pool.refcount(last) > 1;
    const overflow = Math.max(0, count - (pageSize - fill));
    return { pages: (copyOnWrite ? 1 : 0) + Math.ceil(overflow / pageSize), copyOnWrite };
  }

  private validateCommit(change: CommitChange): void {
    if (typeof change !== 'object' || change === null) {
      throw new InvalidArgumentError(`change must be a CommitResult, got ${describeValue(change)}`, {
        argument: 'change',
      });
    }
    this.requireNode('change.into', change.into);
    const { merged, acceptedCounts } = change;
    if (merged.length !== acceptedCounts.length) {
      throw new InvalidArgumentError('change.merged and change.acceptedCounts must have the same length', {
        argument: 'change.acceptedCounts',
        expected: merged.length,
        actual: acceptedCounts.length,
      });
    }
    let parent = change.into;
    for (let index = 0; index < merged.length; index++) {
      const id = merged[index]!;
      this.requireNode(`change.merged[${index}]`, id);
      if (this.topology.parentOf(id) !== parent) {
        throw new InvalidArgumentError(
          `change.merged[${index}] (${id}) is not a child of ${parent}; pass the result of tree.commitPath()`,
          { argument: `change.merged[${index}]`, expected: `a child of ${parent}`, actual: id },
        );
      }
      const accepted = acceptedCounts[index]!;
      const available = this.tokenCountColumn[id]!;
      if (!Number.isInteger(accepted) || accepted < 0 || accepted > available) {
        throw new InvalidArgumentError(
          `change.acceptedCounts[${index}] must be in [0, ${available}] (node ${id}'s tokens), got ${accepted}`,
          { argument: `change.acceptedCounts[${index}]`, expected: `0..${available}`, actual: accepted },
        );
      }
      parent = id;
    }
    const descendants = Array.from(this.topology.subtree(change.into, false));
    const removed = new Set(change.removed);
    if (removed.size !== descendants.length || descendants.some((id) => !removed.has(id))) {
      throw new InvalidArgumentError(
        `change.removed must list exactly the ${descendants.length} descendants of node ${change.into}; pass the result of tree.commitPath()`,
        { argument: 'change.removed', expected: descendants.length, actual: change.removed.length },
      );
    }
  }

  /**
   * Walks a commit. With `fresh === null` it only counts the pages and token moves needed (nothing changes);
   * otherwise it rewrites `into`'s pages using `fresh` for new pages and returns the moves.
   */
  private commitPlan(
    change: CommitChange,
    fresh: Int32Array | null,
  ): { pages: number; moves: number; used: number; source: Int32Array; target: Int32Array } {
    const pageSize = this.pageSize;
    const execute = fresh !== null;
    const into = change.into;
    const pages: number[] = Array.from(
      (this.pageLists[into] ?? EMPTY).subarray(0, this.pageCountColumn[into]!),
    );
    let cursor = this.tokenCountColumn[into]!;
    let writable = cursor % pageSize === 0 || this.pool.refcount(pages[pages.length - 1]!) === 1;
    let needed = 0;
    let moveCount = 0;
    const source: number[] = [];
    const target: number[] = [];
    const take = (): number => {
      if (!execute) return needed++;
      if (needed >= fresh.length) {
        throw new InvalidStateError('internal: a commit needed more pages than planned; please report this', {
          argument: 'commit',
        });
      }
      return fresh[needed++]!;
    };
    for (let index = 0; index < change.merged.length; index++) {
      const node = change.merged[index]!;
      const accepted = change.acceptedCounts[index]!;
      if (accepted === 0) continue;
      const nodePages = this.pageLists[node]!;
      if (cursor % pageSize === 0) {
        // aligned: adopt the node's pages by reference
        const count = Math.ceil(accepted / pageSize);
        for (let page = 0; page < count; page++) {
          const id = nodePages[page]!;
          // after the commit the merged node lets go, so the page is exclusive iff only it holds it now
          writable = this.pool.refcount(id) === 1;
          if (execute) this.pool.retain(id);
          pages.push(id);
        }
        cursor += accepted;
        continue;
      }
      for (let token = 0; token < accepted; token++) {
        if (cursor % pageSize === 0) {
          pages.push(take());
          writable = true;
        } else if (!writable) {
          const copy = take();
          const old = pages[pages.length - 1]!;
          if (execute) {
            this.copyPage(old, copy);
            this.pool.release(old);
          }
          pages[pages.length - 1] = copy;
          writable = true;
        }
        moveCount++;
        if (execute) {
          source.push(nodePages[Math.floor(token / pageSize)]! * pageSize + (token % pageSize));
          target.push(pages[pages.length - 1]! * pageSize + (cursor % pageSize));
        }
        cursor++;
      }
    }
    if (execute) {
      this.pageLists[into] = Int32Array.from(pages);
      this.pageCountColumn[into] = pages.length;
      this.tokenCountColumn[into] = cursor;
    }
    return {
      pages: needed,
      moves: moveCount,
      used: needed,
      source: Int32Array.from(source),
      target: Int32Array.from(target),
    };
  }

  private rebuildPages(numIds: number): void {
    this.indptrBuffer = growInt32(this.indptrBuffer, numIds + 1);
    const indptr = this.indptrBuffer;
    let total = 0;
    for (let id = 0; id < numIds; id++) {
      indptr[id] = total;
      total += this.pageCountColumn[id]!; // 0 for ids not in the cache
    }
    indptr[numIds] = total;
    this.pagesBuffer = growInt32(this.pagesBuffer, total);
    const pages = this.pagesBuffer;
    for (let id = 0; id < numIds; id++) {
      const count = this.pageCountColumn[id]!;
      if (count > 0) pages.set(this.pageLists[id]!.subarray(0, count), indptr[id]!);
    }
    this.pagesLength = total;
    this.pagesDirty = false;
    this.pagesIdLimit = numIds;
  }
}
