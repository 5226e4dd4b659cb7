import { InvalidArgumentError, InvalidStateError, NotFoundError } from '@deft/core';
import { assertInteger, describeValue } from '@deft/core/validate';
import type { DumpTreeOptions } from '../dump/dump-tree.js';
import { dumpTree } from '../dump/dump-tree.js';
import {
  parseTokenTreeJSON,
  TOKEN_TREE_JSON_FORMAT,
  TOKEN_TREE_JSON_VERSION,
  type TokenTreeJSON,
  type TokenTreeNodeJSON,
} from '../serialize/token-tree-json.js';
import { growInt32 } from '../storage/grow-int32.js';
import { TreeTopology, type TreeTopologyView } from '../topology/tree-topology.js';
import { checkToken, toTokenArray } from '../validate/to-token-array.js';
import type {
  CommitResult,
  TreeChange,
  TreeChangeListener,
  TreeChangePhase,
  TreeQueryList,
  TreeQueryMode,
} from './tree-change.js';

const NONE = -1;
/** Smallest token capacity given to a node whose tokens must move to the end of the store. */
const MINIMUM_TOKEN_CAPACITY = 4;
/** The token store is compacted when garbage exceeds half of it and it is at least this large. */
const COMPACTION_THRESHOLD = 1 << 14;

/**
 * A token tree for tree-structured decoding (beam search, best-of-N, speculative token trees, tree-of-thought),
 * stored in typed arrays.
 *
 * A node holds a run of tokens generated on one branch; the root holds the prompt (which may be empty). Leaves
 * are the live sequences. Tokens may be appended to leaves only, so a node's tokens never change once it has
 * children.
 *
 * **Ids.** Node ids are small integers handed out in increasing order (the root is `0`) and are never reused:
 * a pruned id stays dead forever, so a structure keyed by id (a KV cache, a plan) can never confuse a new node
 * with an old one. Arrays indexed by id need {@link TokenTree.idLimit} entries.
 *
 * **Storage.** Topology lives in a {@link TreeTopology} (`Int32Array` columns: parent, first/last child,
 * next/previous sibling), readable through {@link TokenTree.topology}, and tokens in one growable `Int32Array`
 * where each node owns a region with spare capacity; a region that fills
 * up moves to the end with doubled capacity, and the store is compacted when more than half of it is garbage.
 * Every operation costs O(its own size): fork O(k), append O(tokens), prune O(subtree).
 *
 * **Changes.** Every mutation bumps {@link TokenTree.version} and is reported to listeners ({@link TokenTree.on})
 * twice: `'beforeChange'` (validated, nothing changed yet, a listener may veto by throwing) and `'change'`.
 * A failed operation changes nothing.
 *
 * @example
 * ```ts
 * const tree = TokenTree.create([1, 2, 3]);
 * const [a, b] = tree.fork(tree.root, 2);
 * tree.append(a!, 7);
 * tree.append(b!, [8, 9]);
 * tree.queries('leaves'); // { nodes: [a, b], positions: [0, 1] }
 * tree.prune(b!);          // Int32Array [b]
 * ```
 */
export class TokenTree {
  private readonly structure = new TreeTopology();
  private tokenOffsetColumn = new Int32Array(0);
  private tokenCountColumn = new Int32Array(0);
  private tokenCapacityColumn = new Int32Array(0);
  private store = new Int32Array(0);
  private storeUsed = 0;
  private storeGarbage = 0;
  private nextId = 0;
  private changeVersion = 0;
  private readonly listeners: Record<TreeChangePhase, TreeChangeListener[]> = {
    beforeChange: [],
    change: [],
  };

  private constructor() {}

  /**
   * Creates a tree whose root (id `0`) holds the prompt. An empty prompt is allowed (unconditional generation):
   * the root is then an empty leaf.
   *
   * @param promptTokens - `[promptLength]` token ids, integers in `[0, 2^31 - 1]`.
   * @throws InvalidArgumentError if a token is not a valid id.
   * @example
   * ```ts
   * const tree = TokenTree.create(new Int32Array([1, 15043, 29892]));
   * ```
   */
  static create(promptTokens: ArrayLike<number>): TokenTree {
    const tokens = toTokenArray('promptTokens', promptTokens);
    const tree = new TokenTree();
    const root = tree.createNode(NONE);
    tree.writeTokens(root, tokens);
    return tree;
  }

  /**
   * Rebuilds a tree from {@link TokenTree.toJSON} output, keeping every id.
   *
   * @throws InvalidArgumentError naming the offending field if `json` is not a valid serialised tree.
   * @example
   * ```ts
   * const copy = TokenTree.fromJSON(JSON.parse(JSON.stringify(tree)));
   * ```
   */
  static fromJSON(json: unknown): TokenTree {
    const parsed = parseTokenTreeJSON(json);
    const tree = new TokenTree();
    tree.ensureIdCapacity(parsed.nextId);
    for (const node of parsed.nodes) {
      tree.nextId = node.id;
      tree.createNode(node.parent);
      tree.writeTokens(node.id, node.tokens);
    }
    tree.nextId = parsed.nextId;
    tree.changeVersion = 0;
    return tree;
  }

  /** Id of the root (always `0`). */
  get root(): number {
    return 0;
  }

  /** Number of live nodes. */
  get nodeCount(): number {
    return this.structure.nodeCount;
  }

  /**
   * The tree's shape, read-only (parents, children, depth-first order): the one copy a KV cache that follows
   * the tree reads instead of mirroring it. It changes with the tree; its `version` moves only when nodes are
   * added or removed.
   */
  get topology(): TreeTopologyView {
    return this.structure;
  }

  /** One more than the largest id ever handed out: arrays indexed by node id need this many entries. */
  get idLimit(): number {
    return this.nextId;
  }

  /** Incremented by every successful mutation; compare it to skip rebuilding derived data. */
  get version(): number {
    return this.changeVersion;
  }

  /** Total tokens held by live nodes. */
  get totalTokens(): number {
    let total = 0; // removed nodes hold no tokens
    for (let id = 0; id < this.nextId; id++) total += this.tokenCountColumn[id]!;
    return total;
  }

  /**
   * Subscribes to changes. `'beforeChange'` listeners run after validation and before anything changes, and may
   * throw to veto the change; `'change'` listeners run afterwards.
   *
   * @returns A function that unsubscribes the listener.
   * @example
   * ```ts
   * const stop = tree.on('change', (change) => { if (change.type === 'prune') cache.removeNodes(change.removed); });
   * stop();
   * ```
   */
  on(phase: TreeChangePhase, listener: TreeChangeListener): () => void {
    if (phase !== 'beforeChange' && phase !== 'change') {
      throw new InvalidArgumentError(
        `phase must be 'beforeChange' or 'change', got ${describeValue(phase)}`,
        {
          argument: 'phase',
          expected: "'beforeChange' | 'change'",
          actual: phase,
        },
      );
    }
    if (typeof listener !== 'function') {
      throw new InvalidArgumentError(`listener must be a function, got ${describeValue(listener)}`, {
        argument: 'listener',
        expected: 'function',
        actual: listener,
      });
    }
    this.listeners[phase].push(listener);
    return () => this.off(phase, listener);
  }

  /** Unsubscribes a listener added with {@link TokenTree.on}; does nothing if it is not subscribed. */
  off(phase: TreeChangePhase, listener: TreeChangeListener): void {
    const list = this.listeners[phase];
    const index = list?.indexOf(listener) ?? -1;
    if (index >= 0) list!.splice(index, 1);
  }

  /** True if `node` is a live node id. */
  has(node: number): boolean {
    return this.structure.has(node);
  }

  /**
   * Parent of a node, `-1` for the root.
   * @throws NotFoundError if `node` is not a live node.
   */
  parent(node: number): number {
    this.requireNode('node', node);
    return this.structure.parentOf(node);
  }

  /**
   * Children of a node in creation order.
   * @throws NotFoundError if `node` is not a live node.
   */
  children(node: number): number[] {
    this.requireNode('node', node);
    const result: number[] = [];
    const structure = this.structure;
    for (let child = structure.firstChildOf(node); child !== NONE; child = structure.nextSiblingOf(child)) {
      result.push(child);
    }
    return result;
  }

  /**
   * True if the node has no children.
   * @throws NotFoundError if `node` is not a live node.
   */
  isLeaf(node: number): boolean {
    this.requireNode('node', node);
    return this.structure.firstChildOf(node) === NONE;
  }

  /**
   * Number of tokens the node holds.
   * @throws NotFoundError if `node` is not a live node.
   */
  tokenCount(node: number): number {
    this.requireNode('node', node);
    return this.tokenCountColumn[node]!;
  }

  /**
   * Tokens the node holds, as a copy `[tokenCount(node)]`.
   * @throws NotFoundError if `node` is not a live node.
   */
  tokens(node: number): Int32Array {
    this.requireNode('node', node);
    const offset = this.tokenOffsetColumn[node]!;
    return this.store.slice(offset, offset + this.tokenCountColumn[node]!);
  }

  /**
   * Tokens on the path root..node (inclusive) `[pathTokenCount(node)]`: the full sequence of that branch.
   * @throws NotFoundError if `node` is not a live node.
   */
  pathTokens(node: number): Int32Array {
    const path = this.path(node);
    const result = new Int32Array(this.pathTokenCount(node));
    let position = 0;
    for (const id of path) {
      const offset = this.tokenOffsetColumn[id]!;
      const count = this.tokenCountColumn[id]!;
      result.set(this.store.subarray(offset, offset + count), position);
      position += count;
    }
    return result;
  }

  /**
   * Number of tokens on the path root..node (inclusive).
   * @throws NotFoundError if `node` is not a live node.
   */
  pathTokenCount(node: number): number {
    this.requireNode('node', node);
    let total = 0;
    const parents = this.structure.parents();
    for (let id = node; id !== NONE; id = parents[id]!) total += this.tokenCountColumn[id]!;
    return total;
  }

  /**
   * Ids on the path from the root to `node`, both included: `[depth + 1]`.
   * @throws NotFoundError if `node` is not a live node.
   */
  path(node: number): Int32Array {
    this.requireNode('node', node);
    const parents = this.structure.parents();
    let depth = 0;
    for (let id = node; id !== NONE; id = parents[id]!) depth++;
    const result = new Int32Array(depth);
    for (let id = node, index = depth - 1; id !== NONE; id = parents[id]!, index--) result[index] = id;
    return result;
  }

  /** Live node ids in depth-first pre-order (a parent before its children, siblings in creation order). */
  dfsOrder(): Int32Array {
    return this.structure.order().slice();
  }

  /** Leaves in depth-first order. */
  leaves(): Int32Array {
    const order = this.dfsOrder();
    let count = 0;
    for (const id of order) if (this.structure.firstChildOf(id) === NONE) order[count++] = id;
    return order.slice(0, count);
  }

  /**
   * The `(node, position)` pairs decoded this step, in depth-first order (see {@link TreeQueryMode}).
   * Nodes without tokens are skipped.
   *
   * @param mode - `'leaves'` (default), `'all-nodes'` or `'all-tokens'`.
   * @param under - Restrict to the subtree of this node (default: the whole tree). For a speculative token tree
   *   forked below leaf `base`, `queries('all-nodes', base)` gives `base`'s last token and every draft token.
   * @throws InvalidArgumentError for an unknown mode; NotFoundError if `under` is not a live node.
   * @example
   * ```ts
   * const { nodes, positions } = tree.queries('leaves');
   * ```
   */
  queries(mode: TreeQueryMode = 'leaves', under: number = this.root): TreeQueryList {
    if (mode !== 'leaves' && mode !== 'all-nodes' && mode !== 'all-tokens') {
      throw new InvalidArgumentError(
        `mode must be 'leaves', 'all-nodes' or 'all-tokens', got ${describeValue(mode)}`,
        { argument: 'mode', expected: "'leaves' | 'all-nodes' | 'all-tokens'", actual: mode },
      );
    }
    this.requireNode('under', under);
    const structure = this.structure;
    const subtree = under === this.root ? structure.order() : structure.subtree(under, true);
    let total = 0;
    for (const id of subtree) {
      const count = this.tokenCountColumn[id]!;
      if (count === 0) continue;
      if (mode === 'all-tokens') total += count;
      else if (mode === 'all-nodes' || structure.firstChildOf(id) === NONE) total += 1;
    }
    const nodes = new Int32Array(total);
    const positions = new Int32Array(total);
    let index = 0;
    for (const id of subtree) {
      const count = this.tokenCountColumn[id]!;
      if (count === 0) continue;
      if (mode === 'all-tokens') {
        for (let position = 0; position < count; position++, index++) {
          nodes[index] = id;
          positions[index] = position;
        }
      } else if (mode === 'all-nodes' || structure.firstChildOf(id) === NONE) {
        nodes[index] = id;
        positions[index] = count - 1;
        index++;
      }
    }
    return { nodes, positions };
  }

  /**
   * Adds `count` new empty children below `node`, after its existing children. Forking a node that already has
   * children adds more; its tokens are then frozen (append only to leaves).
   *
   * @returns The new ids, in order.
   * @throws NotFoundError if `node` is not a live node; InvalidArgumentError unless `count` is an integer >= 1.
   * @example
   * ```ts
   * const beams = tree.fork(tree.root, 4);
   * ```
   */
  fork(node: number, count: number): number[] {
    this.requireNode('node', node);
    assertInteger('count', count, 1);
    if (this.nextId + count > 0x7fffffff) {
      throw new InvalidArgumentError(`fork would exceed ${0x7fffffff} ids; start a new tree`, {
        argument: 'count',
        expected: `<= ${0x7fffffff - this.nextId}`,
        actual: count,
      });
    }
    const children = new Int32Array(count);
    for (let index = 0; index < count; index++) children[index] = this.nextId + index;
    const change: TreeChange | null = this.hasListeners() ? { type: 'fork', node, children } : null;
    this.emit('beforeChange', change);
    this.ensureIdCapacity(this.nextId + count);
    for (let index = 0; index < count; index++) this.createNode(node);
    this.changeVersion++;
    this.emit('change', change);
    return Array.from(children);
  }

  /**
   * Appends tokens to a leaf.
   *
   * @param leaf - A live node without children.
   * @param tokens - One token id or `[count]` token ids (at least one).
   * @throws NotFoundError if `leaf` is not a live node; InvalidStateError if it has children;
   *   InvalidArgumentError for an empty list or an invalid token id.
   * @example
   * ```ts
   * tree.append(leaf, 42);
   * tree.append(leaf, [7, 8, 9]);
   * ```
   */
  append(leaf: number, tokens: number | ArrayLike<number>): void {
    this.requireNode('leaf', leaf);
    if (this.structure.firstChildOf(leaf) !== NONE) {
      throw new InvalidStateError(
        `node ${leaf} has children, so its tokens are frozen; append to one of its leaves (tree.leaves()) or prune its children first`,
        { argument: 'leaf', expected: 'a leaf', actual: leaf },
      );
    }
    const listening = this.hasListeners();
    if (typeof tokens === 'number' && !listening) {
      checkToken('tokens', tokens);
      this.reserveTokens(leaf, 1);
      this.store[this.tokenOffsetColumn[leaf]! + this.tokenCountColumn[leaf]!] = tokens;
      this.tokenCountColumn[leaf]!++;
      this.changeVersion++;
      return;
    }
    const values = toTokenArray('tokens', tokens);
    if (values.length === 0) {
      throw new InvalidArgumentError(
        'tokens must hold at least one token id; skip the call when there is nothing to append',
        {
          argument: 'tokens',
          expected: 'at least one token',
          actual: tokens,
        },
      );
    }
    const change: TreeChange | null = listening
      ? { type: 'append', node: leaf, start: this.tokenCountColumn[leaf]!, tokens: values }
      : null;
    this.emit('beforeChange', change);
    this.writeTokens(leaf, values);
    this.changeVersion++;
    this.emit('change', change);
  }

  /**
   * Removes `node` and its whole subtree.
   *
   * @returns `[removedCount]` the removed ids in depth-first pre-order (`node` first); ids are never reused.
   * @throws NotFoundError if `node` is not a live node (never created, or already pruned);
   *   InvalidStateError for the root.
   * @example
   * ```ts
   * const dead = tree.prune(branch); // free their KV pages: cache.removeNodes(dead)
   * ```
   */
  prune(node: number): Int32Array {
    this.requireNode('node', node);
    if (node === this.root) {
      throw new InvalidStateError(
        'the root cannot be pruned; prune its children instead, or drop the whole tree and create a new one',
        { argument: 'node', expected: 'a non-root node', actual: node },
      );
    }
    const removed = this.structure.subtree(node, true);
    const change: TreeChange | null = this.hasListeners() ? { type: 'prune', node, removed } : null;
    this.emit('beforeChange', change);
    this.killNodes(removed);
    this.changeVersion++;
    this.emit('change', change);
    return removed;
  }

  /**
   * Accepts a path of a speculative token tree: the tokens on the path below `into` down to `node` (only the
   * first `acceptedCount` tokens of `node` itself) are appended to `into`, and every descendant of `into`
   * (the merged path and all rejected branches) is removed. `into` becomes a leaf.
   *
   * With `node === into` nothing is merged and only the descendants are dropped (every draft rejected).
   *
   * @param node - The deepest accepted node, `into` or a descendant of it.
   * @param acceptedCount - Leading tokens of `node` accepted, `0 ..= tokenCount(node)` (default: all).
   *   Must be `tokenCount(node)` when `node === into`.
   * @param into - The node receiving the tokens (default: the root), usually the leaf the draft tree was forked
   *   from.
   * @returns What moved and what was removed, so a KV cache can follow ({@link CommitResult}).
   * @throws NotFoundError if `node` or `into` is not a live node; InvalidArgumentError if `into` is not an
   *   ancestor of `node` or `acceptedCount` is out of range.
   * @example
   * ```ts
   * const [draft] = tree.fork(leaf, 1);
   * tree.append(draft!, [5, 6, 7]);
   * const result = tree.commitPath(draft!, 2, leaf); // tokens 5, 6 appended to leaf; draft removed
   * ```
   */
  commitPath(node: number, acceptedCount?: number, into: number = this.root): CommitResult {
    this.requireNode('node', node);
    this.requireNode('into', into);
    const nodeTokens = this.tokenCountColumn[node]!;
    const accepted = acceptedCount === undefined ? nodeTokens : acceptedCount;
    assertInteger('acceptedCount', accepted, 0);
    if (accepted > nodeTokens || (node === into && accepted !== nodeTokens)) {
      const maximum = node === into ? `exactly ${nodeTokens} (node is into)` : `at most ${nodeTokens}`;
      throw new InvalidArgumentError(
        `acceptedCount must be ${maximum}, got ${accepted}; pass how many of node ${node}'s tokens were accepted`,
        { argument: 'acceptedCount', expected: maximum, actual: accepted },
      );
    }
    const chain: number[] = [];
    let id = node;
    while (id !== into && id !== NONE) {
      chain.push(id);
      id = this.structure.parentOf(id);
    }
    if (id !== into) {
      throw new InvalidArgumentError(
        `into (${into}) must be node ${node} or one of its ancestors; pass the leaf the draft tree was forked from`,
        { argument: 'into', expected: `an ancestor of ${node}`, actual: into },
      );
    }
    chain.reverse();
    const merged = Int32Array.from(chain);
    const acceptedCounts = new Int32Array(merged.length);
    for (let index = 0; index < merged.length; index++) {
      acceptedCounts[index] = index === merged.length - 1 ? accepted : this.tokenCountColumn[merged[index]!]!;
    }
    const removed = this.structure.subtree(into, false);
    const result: CommitResult = {
      into,
      node,
      start: this.tokenCountColumn[into]!,
      merged,
      acceptedCounts,
      removed,
    };
    const change: TreeChange | null = this.hasListeners() ? { type: 'commit', ...result } : null;
    this.emit('beforeChange', change);
    let total = 0;
    for (const count of acceptedCounts) total += count;
    const gathered = new Int32Array(total);
    let position = 0;
    for (let index = 0; index < merged.length; index++) {
      const offset = this.tokenOffsetColumn[merged[index]!]!;
      gathered.set(this.store.subarray(offset, offset + acceptedCounts[index]!), position);
      position += acceptedCounts[index]!;
    }
    this.killNodes(removed);
    if (total > 0) this.writeTokens(into, gathered);
    this.changeVersion++;
    this.emit('change', change);
    return result;
  }

  /**
   * The tree as plain JSON (nodes in depth-first pre-order, ids kept); see {@link TokenTreeJSON}.
   * @example
   * ```ts
   * fs.writeFileSync('tree.json', JSON.stringify(tree));
   * ```
   */
  toJSON(): TokenTreeJSON {
    const nodes: TokenTreeNodeJSON[] = [];
    for (const id of this.dfsOrder()) {
      nodes.push({ id, parent: this.structure.parentOf(id), tokens: Array.from(this.tokens(id)) });
    }
    return { format: TOKEN_TREE_JSON_FORMAT, version: TOKEN_TREE_JSON_VERSION, nextId: this.nextId, nodes };
  }

  /**
   * A readable multi-line drawing of the tree: one line per node with its id, token count and first tokens.
   * @example
   * ```ts
   * console.log(tree.dump({ maxTokens: 8 }));
   * ```
   */
  dump(options: DumpTreeOptions = {}): string {
    return dumpTree(this, options);
  }

  // ---- internals ----

  private hasListeners(): boolean {
    return this.listeners.beforeChange.length > 0 || this.listeners.change.length > 0;
  }

  private emit(phase: TreeChangePhase, change: TreeChange | null): void {
    if (change === null) return;
    for (const listener of this.listeners[phase].slice()) listener(change);
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
        `${argument} ${node} is not a live node (never created, or pruned); use an id from fork(), leaves() or dfsOrder()`,
        { argument, expected: 'a live node id', actual: node },
      );
    }
  }

  private ensureIdCapacity(length: number): void {
    if (this.tokenCountColumn.length >= length) return;
    this.structure.reserve(length);
    this.tokenOffsetColumn = growInt32(this.tokenOffsetColumn, length);
    this.tokenCountColumn = growInt32(this.tokenCountColumn, length);
    this.tokenCapacityColumn = growInt32(this.tokenCapacityColumn, length);
  }

  /** Creates node `nextId` as the last child of `parent` (or as the root). */
  private createNode(parent: number): number {
    const id = this.nextId++;
    this.ensureIdCapacity(id + 1);
    this.tokenOffsetColumn[id] = this.storeUsed;
    this.tokenCountColumn[id] = 0;
    this.tokenCapacityColumn[id] = 0;
    this.structure.add(id, parent);
    return id;
  }

  /** Removes whole subtrees (`ids` holds every descendant of each of its nodes) and frees their tokens. */
  private killNodes(ids: Int32Array): void {
    for (const id of ids) {
      this.storeGarbage += this.tokenCapacityColumn[id]!;
      this.tokenCapacityColumn[id] = 0;
      this.tokenCountColumn[id] = 0;
    }
    this.structure.remove(ids);
  }

  private writeTokens(node: number, tokens: Int32Array): void {
    if (tokens.length === 0) return;
    this.reserveTokens(node, tokens.length);
    this.store.set(tokens, this.tokenOffsetColumn[node]! + this.tokenCountColumn[node]!);
    this.tokenCountColumn[node]! += tokens.length;
  }

  /** Makes room for `extra` more tokens in `node`'s region (moving it to the end of the store if needed). */
  private reserveTokens(node: number, extra: number): void {
    const offset = this.tokenOffsetColumn[node]!;
    const count = this.tokenCountColumn[node]!;
    const capacity = this.tokenCapacityColumn[node]!;
    const needed = count + extra;
    if (needed <= capacity) return;
    const newCapacity = Math.max(MINIMUM_TOKEN_CAPACITY, needed + (needed >>> 1));
    if (offset + capacity === this.storeUsed) {
      this.store = growInt32(this.store, offset + newCapacity);
      this.storeUsed = offset + newCapacity;
      this.tokenCapacityColumn[node] = newCapacity;
      return;
    }
    if (this.storeGarbage > this.storeUsed >>> 1 && this.storeUsed >= COMPACTION_THRESHOLD) this.compact();
    const from = this.tokenOffsetColumn[node]!;
    const start = this.storeUsed;
    this.store = growInt32(this.store, start + newCapacity);
    this.store.copyWithin(start, from, from + count);
    this.storeGarbage += this.tokenCapacityColumn[node]!;
    this.tokenOffsetColumn[node] = start;
    this.tokenCapacityColumn[node] = newCapacity;
    this.storeUsed = start + newCapacity;
  }

  /** Rewrites the token store without garbage; interior nodes keep exactly their tokens, leaves their capacity. */
  private compact(): void {
    let size = 0;
    const structure = this.structure;
    for (let id = 0; id < this.nextId; id++) {
      if (!structure.has(id)) continue;
      size +=
        structure.firstChildOf(id) === NONE ? this.tokenCapacityColumn[id]! : this.tokenCountColumn[id]!;
    }
    const store = new Int32Array(Math.max(16, size + (size >>> 1)));
    let position = 0;
    for (let id = 0; id < this.nextId; id++) {
      if (!structure.has(id)) continue;
      const offset = this.tokenOffsetColumn[id]!;
      const count = this.tokenCountColumn[id]!;
      store.set(this.store.subarray(offset, offset + count), position);
      const capacity = structure.firstChildOf(id) === NONE ? this.tokenCapacityColumn[id]! : count;
      this.tokenOffsetColumn[id] = position;
      this.tokenCapacityColumn[id] = capacity;
      position += capacity;
    }
    this.store = store;
    this.storeUsed = position;
    this.storeGarbage = 0;
  }
}
