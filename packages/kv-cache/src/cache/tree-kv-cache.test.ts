import {
  CapacityError,
  DisposedError,
  InvalidArgumentError,
  InvalidStateError,
  NotFoundError,
} from '@deft/core';
import { TokenTree } from '@deft/tree';
import { describe, expect, it } from 'vitest';
import { createKVSimulation, prefixValues } from '../../test/kv-simulation.js';
import { memoryUsage } from '../accounting/memory-usage.js';
import { PagePool } from '../pool/page-pool.js';
import { PrefixCache } from './prefix-cache.js';
import { TreeKVCache } from './tree-kv-cache.js';

function writeNew(
  simulation: ReturnType<typeof createKVSimulation>,
  tree: TokenTree,
  cache: TreeKVCache,
  node: number,
  from: number,
): void {
  const values = prefixValues(tree.pathTokens(node)).slice(tree.pathTokenCount(node) - tree.tokenCount(node));
  const slots = cache.slotsOf(node, from);
  for (let index = 0; index < slots.length; index++) simulation.values[slots[index]!] = values[from + index]!;
}

function readBack(
  simulation: ReturnType<typeof createKVSimulation>,
  cache: TreeKVCache,
  node: number,
): number[] {
  return Array.from(cache.slotsOf(node), (slot) => simulation.values[slot]!);
}

function expectedValues(tree: TokenTree, node: number): number[] {
  return prefixValues(tree.pathTokens(node)).slice(tree.pathTokenCount(node) - tree.tokenCount(node));
}

describe('TreeKVCache (explicit calls)', () => {
  it('gives each node its own pages, children starting on fresh pages', () => {
    const pool = new PagePool({ numPages: 16, pageSize: 4 });
    const cache = new TreeKVCache({ pool });
    cache.addNode(0);
    expect(Array.from(cache.appendTokens(0, 6))).toEqual([0, 1, 2, 3, 4, 5]);
    cache.addNode(1, 0);
    cache.addNode(2, 0);
    expect(Array.from(cache.appendTokens(1, 1))).toEqual([8]);
    expect(Array.from(cache.appendTokens(2, 5))).toEqual([12, 13, 14, 15, 16]);
    expect(Array.from(cache.appendTokens(1, 4))).toEqual([9, 10, 11, 20]);
    const view = cache.view();
    expect(view.pageSize).toBe(4);
    expect(Array.from(view.order)).toEqual([0, 1, 2]);
    expect(Array.from(view.parent)).toEqual([-1, 0, 0]);
    expect(Array.from(view.tokenCount)).toEqual([6, 5, 5]);
    expect(Array.from(view.pageIndptr)).toEqual([0, 2, 4, 6]);
    expect(Array.from(view.pages)).toEqual([0, 1, 2, 5, 3, 4]);
    expect(cache.view()).toBe(view);
    cache.removeNodes([2]);
    expect(pool.usedCount).toBe(4);
    expect(Array.from(cache.view().order)).toEqual([0, 1]);
  });

  it('copies a shared partly filled last page before writing (copy-on-write)', () => {
    const pool = new PagePool({ numPages: 8, pageSize: 4 });
    const simulation = createKVSimulation(8, 4);
    const cache = new TreeKVCache({ pool, backend: simulation.backend, storage: simulation.storage });
    cache.addNode(0);
    cache.appendTokens(0, 2);
    const [page] = cache.pagesOf(0);
    pool.retain(page!); // another holder
    const slots = cache.appendTokens(0, 1);
    expect(simulation.copies).toBe(1);
    expect(cache.pagesOf(0)[0]).not.toBe(page);
    expect(slots[0]! % 4).toBe(2);
    expect(pool.refcount(page!)).toBe(1);
  });

  it('rejects bad input with typed errors and changes nothing', () => {
    const pool = new PagePool({ numPages: 2, pageSize: 2 });
    const cache = new TreeKVCache({ pool });
    cache.addNode(0);
    cache.appendTokens(0, 3);
    cache.addNode(1, 0);
    const before = JSON.stringify([cache.pagesOf(0), cache.tokenCount(0), pool.freePages()]);
    expect(() => cache.appendTokens(0, 1)).toThrow(InvalidStateError);
    expect(() => cache.appendTokens(1, 0)).toThrow(InvalidArgumentError);
    expect(() => cache.appendTokens(1, -2)).toThrow(InvalidArgumentError);
    expect(() => cache.appendTokens(1, 1.5)).toThrow(InvalidArgumentError);
    expect(() => cache.appendTokens(1, 3)).toThrow(CapacityError);
    expect(() => cache.appendTokens(9, 1)).toThrow(NotFoundError);
    expect(() => cache.addNode(1, 0)).toThrow(InvalidStateError);
    expect(() => cache.addNode(2, 7)).toThrow(NotFoundError);
    expect(() => cache.removeNodes([0])).toThrow(InvalidStateError);
    expect(() => cache.removeNodes([1, 1])).toThrow(InvalidArgumentError);
    expect(() => cache.slotsOf(0, 0, 9)).toThrow(InvalidArgumentError);
    expect(() => cache.reusePrefix(0, [1])).toThrow(InvalidStateError);
    expect(JSON.stringify([cache.pagesOf(0), cache.tokenCount(0), pool.freePages()])).toBe(before);
    expect(cache.tokenCount(1)).toBe(0);
    cache.removeNodes([1]);
    expect(() => cache.removeNodes([1])).toThrow(NotFoundError);
    cache.dispose();
    cache.dispose();
    expect(pool.freeCount).toBe(2);
    expect(() => cache.addNode(5)).toThrow(DisposedError);
    expect(() => new TreeKVCache({ pool, backend: createKVSimulation(2, 2).backend })).toThrow(
      InvalidArgumentError,
    );
  });
});

describe('TreeKVCache attached to a TokenTree', () => {
  it('follows fork / append / prune and keeps every path readable', () => {
    const pool = new PagePool({ numPages: 32, pageSize: 4 });
    const simulation = createKVSimulation(32, 4);
    const tree = TokenTree.create([1, 2, 3, 4, 5]);
    const cache = new TreeKVCache({ pool, ...simulation });
    cache.attach(tree);
    writeNew(simulation, tree, cache, tree.root, 0);
    const [a, b] = tree.fork(tree.root, 2) as [number, number];
    for (const [leaf, tokens] of [
      [a, [6, 7]],
      [b, [8, 9, 10, 11, 12]],
    ] as const) {
      tree.append(leaf, tokens);
      writeNew(simulation, tree, cache, leaf, 0);
    }
    tree.append(a, 13);
    writeNew(simulation, tree, cache, a, 2);
    for (const node of tree.dfsOrder())
      expect(readBack(simulation, cache, node)).toEqual(expectedValues(tree, node));
    expect(Array.from(cache.view().order)).toEqual(Array.from(tree.dfsOrder()));
    const used = pool.usedCount;
    tree.prune(b);
    expect(pool.usedCount).toBe(used - 2);
    // a vetoed append leaves tree and cache unchanged
    const small = new TreeKVCache({ pool: new PagePool({ numPages: 2, pageSize: 4 }) });
    const other = TokenTree.create([1, 2, 3]);
    small.attach(other);
    expect(() => other.append(other.root, [1, 2, 3, 4, 5, 6])).toThrow(CapacityError);
    expect(other.tokenCount(other.root)).toBe(3);
    expect(small.tokenCount(other.root)).toBe(3);
  });

  it("reads the tree's topology instead of a copy; shape changes go through the tree", () => {
    const pool = new PagePool({ numPages: 32, pageSize: 4 });
    const tree = TokenTree.create([1, 2, 3, 4, 5]);
    const cache = new TreeKVCache({ pool });
    cache.attach(tree);
    const [a, b] = tree.fork(tree.root, 2) as [number, number];
    tree.append(a, [6, 7]);
    const view = cache.view();
    expect(view.parent.buffer).toBe(tree.topology.parents().buffer);
    expect(view.order.buffer).toBe(tree.topology.order().buffer);
    expect(Array.from(view.parent)).toEqual([-1, 0, 0]);
    expect(() => cache.addNode(9, a)).toThrow(InvalidStateError);
    expect(() => cache.removeNodes([b])).toThrow(InvalidStateError);
    const none = new Int32Array(0);
    expect(() => cache.applyCommit({ into: a, merged: none, acceptedCounts: none, removed: none })).toThrow(
      InvalidStateError,
    );
    expect(cache.nodeCount).toBe(3);
    // detached, the cache keeps the shape it had and changes it on its own
    cache.detach();
    tree.prune(b);
    expect(cache.has(b)).toBe(true);
    cache.removeNodes([b]);
    expect(tree.has(a) && cache.has(a) && !cache.has(b)).toBe(true);
    expect(Array.from(cache.view().order)).toEqual([tree.root, a]);
    expect(cache.pagesOf(a)).toHaveLength(1);
  });

  it('commits a speculative path, adopting aligned pages and moving the rest', () => {
    const pool = new PagePool({ numPages: 32, pageSize: 4 });
    const simulation = createKVSimulation(32, 4);
    const tree = TokenTree.create([1, 2, 3, 4, 5, 6]);
    const cache = new TreeKVCache({ pool, ...simulation });
    cache.attach(tree);
    writeNew(simulation, tree, cache, tree.root, 0);
    const [x, y] = tree.fork(tree.root, 2) as [number, number];
    tree.append(x, [7, 8, 9]);
    tree.append(y, [20]);
    const [x1] = tree.fork(x, 1) as [number];
    tree.append(x1, [10, 11]);
    for (const node of [x, y, x1]) writeNew(simulation, tree, cache, node, 0);
    tree.commitPath(x1, 1);
    expect(Array.from(tree.tokens(tree.root))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(readBack(simulation, cache, tree.root)).toEqual(expectedValues(tree, tree.root));
    expect(cache.nodeCount).toBe(1);
    expect(pool.usedCount).toBe(3);
    // without onSlotMoves a commit that must copy is vetoed
    const bare = new TreeKVCache({ pool });
    const other = TokenTree.create([1]);
    bare.attach(other);
    const [draft] = other.fork(other.root, 1) as [number];
    other.append(draft, [2]);
    expect(() => other.commitPath(draft)).toThrow(/onSlotMoves/);
    expect(other.nodeCount).toBe(2);
  });

  it('reuses a cached prompt prefix by reference, and eviction never frees live pages', () => {
    const pool = new PagePool({ numPages: 16, pageSize: 4 });
    const simulation = createKVSimulation(16, 4);
    const prefixCache = new PrefixCache({ pool, budgetPages: 8 });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const first = TokenTree.create(prompt);
    const firstCache = new TreeKVCache({ pool, prefixCache, ...simulation });
    expect(firstCache.attach(first).reusedTokens).toBe(0);
    writeNew(simulation, first, firstCache, first.root, 0);
    expect(firstCache.cachePath(first.root)).toBe(3);
    firstCache.dispose();
    expect(memoryUsage(pool, { prefixCache })).toMatchObject({
      usedPages: 3,
      cachedPages: 3,
      reclaimablePages: 3,
    });

    const second = TokenTree.create([...prompt.slice(0, 9), 99, 100]);
    const secondCache = new TreeKVCache({ pool, prefixCache, ...simulation });
    expect(secondCache.attach(second).reusedTokens).toBe(9);
    writeNew(simulation, second, secondCache, second.root, 9);
    expect(readBack(simulation, secondCache, second.root)).toEqual(expectedValues(second, second.root));
    expect(simulation.copies).toBe(1); // the shared partial page was copied before writing token 9
    const usage = memoryUsage(pool, {
      prefixCache,
      shape: { numLayers: 2, numKvHeads: 2, headDim: 8, dtype: 'f16' },
    });
    expect(usage.sharedPages).toBe(2);
    expect(usage.bytes?.bytesPerToken).toBe(2 * 2 * 2 * 8 * 2);
    prefixCache.clear();
    expect(readBack(simulation, secondCache, second.root)).toEqual(expectedValues(second, second.root));
    expect(pool.usedCount).toBe(3);
  });
});
