import { growInt32, growUint8 } from '../storage/grow-int32.js';

const NONE = -1;

/**
 * Read-only access to the shape of a forest of nodes with integer ids: who is alive, each node's parent and
 * children in creation order, and the depth-first order. {@link TokenTree.topology} gives a tree's; a
 * `TreeKVCache` attached to the tree reads it there instead of keeping a copy, so the two never disagree.
 *
 * Reads are unchecked and O(1): pass live ids (see {@link TreeTopologyView.has}). Nothing here changes the
 * topology; only its owner does.
 */
export interface TreeTopologyView {
  /** One more than the largest id ever added: arrays indexed by node id need this many entries. */
  readonly idLimit: number;
  /** Number of live nodes. */
  readonly nodeCount: number;
  /** Incremented by every change of shape (nodes added or removed); tokens do not count. */
  readonly version: number;
  /** True if `node` is a live node id. */
  has(node: number): boolean;
  /** Parent of a live node, `-1` for a root. */
  parentOf(node: number): number;
  /** First child of a live node, `-1` for a leaf. */
  firstChildOf(node: number): number;
  /** Next sibling of a live node in creation order, `-1` for the last child (or a root). */
  nextSiblingOf(node: number): number;
  /**
   * `[idLimit]` the parent of every id, `-1` for roots and for ids that are not live. Owned by the topology:
   * read it, never write it; it is valid until the next change of shape.
   */
  parents(): Int32Array;
  /**
   * `[nodeCount]` live ids in depth-first pre-order (a parent before its children, siblings and roots in
   * creation order). Owned by the topology and rebuilt only when {@link TreeTopologyView.version} moves: read
   * it, never write it; it is valid until the next change of shape.
   */
  order(): Int32Array;
  /**
   * The subtree of a live node in pre-order, as a new array: `node` first when `includeSelf`, then its
   * descendants.
   */
  subtree(node: number, includeSelf: boolean): Int32Array;
  /** A copy of the topology as it is now, owned by the caller and changing independently of this one. */
  clone(): TreeTopology;
}

/**
 * The topology of a forest with integer ids in typed-array columns (parent, first/last child, next/previous
 * sibling, alive). The single store of a token tree's shape: {@link TokenTree} owns one, and a KV cache used
 * without a tree owns one of its own. Mutators do not validate: the owner checks its arguments first, so a
 * failed operation never reaches here.
 */
export class TreeTopology implements TreeTopologyView {
  private parentColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  private firstChildColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  private lastChildColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  private nextSiblingColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  private previousSiblingColumn: Int32Array<ArrayBuffer> = new Int32Array(0);
  private aliveColumn: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  private roots: number[] = [];
  private limit = 0;
  private liveNodes = 0;
  private shapeVersion = 0;
  private orderBuffer: Int32Array<ArrayBuffer> = new Int32Array(0);
  private orderVersion = -1;
  private orderView: Int32Array = this.orderBuffer;
  private parentsView: Int32Array = this.parentColumn;

  get idLimit(): number {
    return this.limit;
  }

  get nodeCount(): number {
    return this.liveNodes;
  }

  get version(): number {
    return this.shapeVersion;
  }

  has(node: number): boolean {
    return Number.isInteger(node) && node >= 0 && node < this.limit && this.aliveColumn[node] === 1;
  }

  parentOf(node: number): number {
    return this.parentColumn[node]!;
  }

  firstChildOf(node: number): number {
    return this.firstChildColumn[node]!;
  }

  nextSiblingOf(node: number): number {
    return this.nextSiblingColumn[node]!;
  }

  parents(): Int32Array {
    const view = this.parentsView;
    if (view.buffer !== this.parentColumn.buffer || view.length !== this.limit)
      this.parentsView = this.parentColumn.subarray(0, this.limit);
    return this.parentsView;
  }

  order(): Int32Array {
    if (this.orderVersion !== this.shapeVersion) {
      this.orderBuffer = growInt32(this.orderBuffer, this.liveNodes);
      let length = 0;
      for (const root of this.roots) length = this.walk(root, true, this.orderBuffer, length);
      this.orderView = this.orderBuffer.subarray(0, length);
      this.orderVersion = this.shapeVersion;
    }
    return this.orderView;
  }

  subtree(node: number, includeSelf: boolean): Int32Array {
    const size = this.limit > 0 && this.parentColumn[node] === NONE ? Math.max(64, this.liveNodes) : 64;
    let result = new Int32Array(size);
    let count = 0;
    const firstChild = this.firstChildColumn;
    const nextSibling = this.nextSiblingColumn;
    const parent = this.parentColumn;
    let id = node;
    while (true) {
      if (count === result.length) result = growInt32(result, count + 1);
      result[count++] = id;
      const child = firstChild[id]!;
      if (child !== NONE) {
        id = child;
        continue;
      }
      while (id !== node && nextSibling[id] === NONE) id = parent[id]!;
      if (id === node) break;
      id = nextSibling[id]!;
    }
    return includeSelf ? result.slice(0, count) : result.slice(1, count);
  }

  /** Makes room for ids below `length` (they read as not live until added). */
  reserve(length: number): void {
    if (this.aliveColumn.length >= length) return;
    this.parentColumn = growInt32(this.parentColumn, length, NONE);
    this.firstChildColumn = growInt32(this.firstChildColumn, length, NONE);
    this.lastChildColumn = growInt32(this.lastChildColumn, length, NONE);
    this.nextSiblingColumn = growInt32(this.nextSiblingColumn, length, NONE);
    this.previousSiblingColumn = growInt32(this.previousSiblingColumn, length, NONE);
    this.aliveColumn = growUint8(this.aliveColumn, length);
  }

  /** Adds `node` (not live) as the last child of live `parent`, or as the last root with `parent = -1`. */
  add(node: number, parent: number): void {
    this.reserve(node + 1);
    if (node >= this.limit) this.limit = node + 1;
    this.parentColumn[node] = parent;
    this.firstChildColumn[node] = NONE;
    this.lastChildColumn[node] = NONE;
    this.nextSiblingColumn[node] = NONE;
    this.previousSiblingColumn[node] = NONE;
    this.aliveColumn[node] = 1;
    if (parent === NONE) this.roots.push(node);
    else {
      const last = this.lastChildColumn[parent]!;
      if (last === NONE) this.firstChildColumn[parent] = node;
      else {
        this.nextSiblingColumn[last] = node;
        this.previousSiblingColumn[node] = last;
      }
      this.lastChildColumn[parent] = node;
    }
    this.liveNodes++;
    this.shapeVersion++;
  }

  /**
   * Removes live nodes: `ids` must hold every descendant of each node it holds (a pruned subtree, the
   * descendants of a committed node, or a union of such sets), each once. Nodes whose parent stays are
   * unlinked from it; removed ids read as not live with parent `-1`.
   */
  remove(ids: ArrayLike<number>): void {
    if (ids.length === 0) return;
    for (let index = 0; index < ids.length; index++) this.aliveColumn[ids[index]!] = 0;
    for (let index = 0; index < ids.length; index++) {
      const node = ids[index]!;
      const parent = this.parentColumn[node]!;
      if (parent === NONE) this.roots.splice(this.roots.indexOf(node), 1);
      else if (this.aliveColumn[parent] === 1) this.unlink(node, parent);
    }
    for (let index = 0; index < ids.length; index++) this.parentColumn[ids[index]!] = NONE;
    this.liveNodes -= ids.length;
    this.shapeVersion++;
  }

  clone(): TreeTopology {
    const copy = new TreeTopology();
    copy.parentColumn = this.parentColumn.slice();
    copy.firstChildColumn = this.firstChildColumn.slice();
    copy.lastChildColumn = this.lastChildColumn.slice();
    copy.nextSiblingColumn = this.nextSiblingColumn.slice();
    copy.previousSiblingColumn = this.previousSiblingColumn.slice();
    copy.aliveColumn = this.aliveColumn.slice();
    copy.roots = this.roots.slice();
    copy.limit = this.limit;
    copy.liveNodes = this.liveNodes;
    copy.shapeVersion = this.shapeVersion;
    return copy;
  }

  private unlink(node: number, parent: number): void {
    const previous = this.previousSiblingColumn[node]!;
    const next = this.nextSiblingColumn[node]!;
    if (previous === NONE) this.firstChildColumn[parent] = next;
    else this.nextSiblingColumn[previous] = next;
    if (next === NONE) this.lastChildColumn[parent] = previous;
    else this.previousSiblingColumn[next] = previous;
    this.previousSiblingColumn[node] = NONE;
    this.nextSiblingColumn[node] = NONE;
  }

  /** Writes the subtree of `node` in pre-order into `target` from `start`; returns the end. */
  private walk(node: number, includeSelf: boolean, target: Int32Array, start: number): number {
    const firstChild = this.firstChildColumn;
    const nextSibling = this.nextSiblingColumn;
    const parent = this.parentColumn;
    let length = start;
    let id = node;
    while (true) {
      if (includeSelf || id !== node) target[length++] = id;
      const child = firstChild[id]!;
      if (child !== NONE) {
        id = child;
        continue;
      }
      while (id !== node && nextSibling[id] === NONE) id = parent[id]!;
      if (id === node) break;
      id = nextSibling[id]!;
    }
    return length;
  }
}
