import { describe, expect, it } from 'vitest';
import { TokenTree } from '../tree/token-tree.js';
import { TreeTopology } from './tree-topology.js';

describe('TreeTopology', () => {
  it('keeps roots and children in creation order, with sparse ids', () => {
    const topology = new TreeTopology();
    topology.add(5, -1);
    topology.add(2, 5);
    topology.add(9, 5);
    topology.add(0, -1);
    topology.add(7, 2);
    expect(topology.idLimit).toBe(10);
    expect(topology.nodeCount).toBe(5);
    expect(Array.from(topology.order())).toEqual([5, 2, 7, 9, 0]);
    expect(Array.from(topology.subtree(5, false))).toEqual([2, 7, 9]);
    expect(Array.from(topology.parents())).toEqual([-1, -1, 5, -1, -1, -1, -1, 2, -1, 5]);
    expect([topology.has(3), topology.has(7), topology.has(10), topology.has(1.5)]).toEqual([
      false,
      true,
      false,
      false,
    ]);
    expect([topology.firstChildOf(5), topology.nextSiblingOf(2), topology.nextSiblingOf(9)]).toEqual([
      2, 9, -1,
    ]);
  });

  it('removes whole subtrees, unlinking only from parents that stay', () => {
    const topology = new TreeTopology();
    for (const [node, parent] of [
      [0, -1],
      [1, 0],
      [2, 0],
      [3, 1],
      [4, 1],
      [5, 2],
      [6, -1],
    ] as const)
      topology.add(node, parent);
    const version = topology.version;
    topology.remove(topology.subtree(1, true));
    expect(topology.version).toBe(version + 1);
    expect(Array.from(topology.order())).toEqual([0, 2, 5, 6]);
    expect([topology.has(1), topology.has(3), topology.parentOf(2)]).toEqual([false, false, 0]);
    expect(topology.parents()[3]).toBe(-1);
    const copy = topology.clone();
    topology.remove([6]);
    topology.remove(topology.subtree(0, false)); // what a commit into 0 drops
    expect(Array.from(topology.order())).toEqual([0]);
    expect(topology.firstChildOf(0)).toBe(-1);
    expect(Array.from(copy.order())).toEqual([0, 2, 5, 6]);
    copy.add(8, 5);
    expect(Array.from(copy.order())).toEqual([0, 2, 5, 8, 6]);
    expect(topology.has(8)).toBe(false);
  });

  it("is the token tree's shape, and its version ignores appends", () => {
    const tree = TokenTree.create([1, 2]);
    const topology = tree.topology;
    const [a, b] = tree.fork(tree.root, 2) as [number, number];
    const [c] = tree.fork(a, 1) as [number];
    expect(Array.from(topology.order())).toEqual(Array.from(tree.dfsOrder()));
    const version = topology.version;
    tree.append(b, 3);
    expect(topology.version).toBe(version);
    tree.prune(a);
    expect([topology.has(a), topology.has(c), topology.nodeCount]).toEqual([false, false, 2]);
    expect(Array.from(topology.order())).toEqual([tree.root, b]);
  });
});
