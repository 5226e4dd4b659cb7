import { InvalidArgumentError, InvalidStateError, NotFoundError } from '@deft/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TokenTree } from './token-tree.js';
import type { TreeChange } from './tree-change.js';

/** A plain object model of a token tree, the oracle for the property test. */
interface ModelNode {
  parent: number;
  tokens: number[];
  children: number[];
}

function modelDfs(model: Map<number, ModelNode>, node: number, out: number[] = []): number[] {
  out.push(node);
  for (const child of model.get(node)!.children) modelDfs(model, child, out);
  return out;
}

function removeModelSubtree(model: Map<number, ModelNode>, node: number): number[] {
  const removed = modelDfs(model, node);
  for (const id of removed) model.delete(id);
  return removed;
}

function expectMatchesModel(tree: TokenTree, model: Map<number, ModelNode>): void {
  const order = modelDfs(model, 0);
  expect(Array.from(tree.dfsOrder())).toEqual(order);
  expect(tree.nodeCount).toBe(model.size);
  for (const id of order) {
    const node = model.get(id)!;
    expect(tree.parent(id)).toBe(node.parent);
    expect(Array.from(tree.tokens(id))).toEqual(node.tokens);
    expect(tree.children(id)).toEqual(node.children);
  }
  expect(Array.from(tree.leaves())).toEqual(order.filter((id) => model.get(id)!.children.length === 0));
}

describe('TokenTree', () => {
  it('creates a root holding the prompt, and allows an empty prompt', () => {
    const tree = TokenTree.create([1, 2, 3]);
    expect(tree.root).toBe(0);
    expect(Array.from(tree.tokens(0))).toEqual([1, 2, 3]);
    expect(tree.isLeaf(0)).toBe(true);
    const empty = TokenTree.create([]);
    expect(empty.tokenCount(0)).toBe(0);
    expect(empty.queries('leaves').nodes.length).toBe(0);
  });

  it('forks, appends, prunes and reports queries in depth-first order', () => {
    const tree = TokenTree.create([1, 2, 3]);
    const [a, b] = tree.fork(tree.root, 2) as [number, number];
    tree.append(a, 7);
    tree.append(b, [8, 9]);
    const [c] = tree.fork(a, 1) as [number];
    tree.append(c, [4, 5, 6]);
    expect(Array.from(tree.dfsOrder())).toEqual([0, a, c, b]);
    expect(Array.from(tree.path(c))).toEqual([0, a, c]);
    expect(tree.pathTokenCount(c)).toBe(7);
    expect(Array.from(tree.pathTokens(c))).toEqual([1, 2, 3, 7, 4, 5, 6]);
    const leaves = tree.queries('leaves');
    expect(Array.from(leaves.nodes)).toEqual([c, b]);
    expect(Array.from(leaves.positions)).toEqual([2, 1]);
    const allNodes = tree.queries('all-nodes');
    expect(Array.from(allNodes.nodes)).toEqual([0, a, c, b]);
    expect(Array.from(allNodes.positions)).toEqual([2, 0, 2, 1]);
    const allTokens = tree.queries('all-tokens', a);
    expect(Array.from(allTokens.nodes)).toEqual([a, c, c, c]);
    expect(Array.from(allTokens.positions)).toEqual([0, 0, 1, 2]);
    expect(Array.from(tree.prune(a))).toEqual([a, c]);
    expect(tree.has(a)).toBe(false);
    expect(tree.has(c)).toBe(false);
    expect(tree.children(0)).toEqual([b]);
    // ids are never reused
    expect(tree.fork(b, 1)).toEqual([4]);
  });

  it('commits an accepted path of a speculative token tree into its base leaf', () => {
    const tree = TokenTree.create([1, 2]);
    const [base] = tree.fork(tree.root, 1) as [number];
    tree.append(base, [3]);
    const [x, y] = tree.fork(base, 2) as [number, number];
    tree.append(x, [10, 11]);
    tree.append(y, [20]);
    const [x1] = tree.fork(x, 1) as [number];
    tree.append(x1, [12, 13, 14]);
    const result = tree.commitPath(x1, 2, base);
    expect(result.into).toBe(base);
    expect(result.start).toBe(1);
    expect(Array.from(result.merged)).toEqual([x, x1]);
    expect(Array.from(result.acceptedCounts)).toEqual([2, 2]);
    expect(Array.from(result.removed)).toEqual([x, x1, y]);
    expect(Array.from(tree.tokens(base))).toEqual([3, 10, 11, 12, 13]);
    expect(tree.isLeaf(base)).toBe(true);
    expect(tree.nodeCount).toBe(2);
    // every draft rejected: node === into drops the descendants only
    tree.fork(base, 3);
    const rejected = tree.commitPath(base, undefined, base);
    expect(rejected.merged.length).toBe(0);
    expect(rejected.removed.length).toBe(3);
    expect(tree.tokenCount(base)).toBe(5);
  });

  it('throws typed errors that change nothing', () => {
    const tree = TokenTree.create([1]);
    const [a] = tree.fork(tree.root, 1) as [number];
    const before = JSON.stringify(tree);
    const version = tree.version;
    expect(() => tree.prune(tree.root)).toThrow(InvalidStateError);
    expect(() => tree.prune(99)).toThrow(NotFoundError);
    expect(() => tree.append(tree.root, 5)).toThrow(InvalidStateError);
    expect(() => tree.append(a, [])).toThrow(InvalidArgumentError);
    expect(() => tree.append(a, [1, -2])).toThrow(InvalidArgumentError);
    expect(() => tree.append(a, 1.5)).toThrow(InvalidArgumentError);
    expect(() => tree.fork(a, 0)).toThrow(InvalidArgumentError);
    expect(() => tree.fork(a, -1)).toThrow(InvalidArgumentError);
    expect(() => tree.fork(a, 1.5)).toThrow(InvalidArgumentError);
    expect(() => tree.fork(Number.NaN, 1)).toThrow(InvalidArgumentError);
    expect(() => tree.commitPath(a, 1)).toThrow(InvalidArgumentError);
    expect(() => tree.commitPath(tree.root, undefined, a)).toThrow(InvalidArgumentError);
    expect(() => tree.queries('bogus' as never)).toThrow(InvalidArgumentError);
    tree.prune(a);
    expect(() => tree.prune(a)).toThrow(NotFoundError);
    expect(() => tree.append(a, 1)).toThrow(/not a live node/);
    expect(JSON.stringify(tree)).not.toBe(before);
    expect(tree.version).toBe(version + 1);
  });

  it('lets a beforeChange listener veto a change', () => {
    const tree = TokenTree.create([1]);
    const seen: TreeChange[] = [];
    tree.on('change', (change) => seen.push(change));
    const stop = tree.on('beforeChange', (change) => {
      if (change.type === 'append') throw new Error('vetoed');
    });
    expect(() => tree.append(tree.root, [2, 3])).toThrow('vetoed');
    expect(tree.tokenCount(tree.root)).toBe(1);
    expect(seen).toEqual([]);
    // a number append with listeners goes through the listener path too
    const [leaf] = tree.fork(tree.root, 1) as [number];
    expect(() => tree.append(leaf, 3)).toThrow('vetoed');
    expect(tree.tokenCount(leaf)).toBe(0);
    stop();
    tree.append(leaf, 3);
    expect(seen.map((change) => change.type)).toEqual(['fork', 'append']);
  });

  it('round-trips through JSON and rejects bad JSON with typed errors', () => {
    const tree = TokenTree.create([5, 6]);
    const [a, b] = tree.fork(tree.root, 2) as [number, number];
    tree.append(b, [1, 2]);
    tree.fork(a, 2);
    tree.prune(a);
    const json = JSON.parse(JSON.stringify(tree));
    const copy = TokenTree.fromJSON(json);
    expect(copy.toJSON()).toEqual(tree.toJSON());
    expect(copy.fork(b, 1)).toEqual(tree.fork(b, 1));
    expect(() => TokenTree.fromJSON(null)).toThrow(InvalidArgumentError);
    expect(() => TokenTree.fromJSON({ ...json, format: 'x' })).toThrow(/json.format/);
    expect(() => TokenTree.fromJSON({ ...json, nodes: [] })).toThrow(/json.nodes/);
    expect(() => TokenTree.fromJSON({ ...json, nodes: [{ id: 0, parent: 3, tokens: [] }] })).toThrow(
      /parent/,
    );
    expect(() =>
      TokenTree.fromJSON({
        ...json,
        nodes: [
          { id: 0, parent: -1, tokens: [] },
          { id: 0, parent: 0, tokens: [] },
        ],
      }),
    ).toThrow(/id/);
    expect(() => TokenTree.fromJSON({ ...json, nodes: [{ id: 0, parent: -1, tokens: ['a'] }] })).toThrow(
      /tokens/,
    );
    expect(() => TokenTree.fromJSON({ ...json, nextId: 1 })).toThrow(/nextId/);
  });

  it('dumps a readable drawing', () => {
    const tree = TokenTree.create([1, 2, 3]);
    const [a, b] = tree.fork(tree.root, 2) as [number, number];
    tree.append(a, [4]);
    tree.fork(a, 1);
    tree.append(b, [5, 6, 7, 8]);
    expect(tree.dump({ maxTokens: 2 })).toBe(
      ['#0 (3 tokens) 1 2 …', '├─ #1 (1 token) 4', '│  └─ #3 (0 tokens)', '└─ #2 (4 tokens) 5 6 …'].join(
        '\n',
      ),
    );
  });

  it('matches a plain model over long random operation sequences', () => {
    const operation = fc.record({
      kind: fc.constantFrom('fork', 'append', 'append', 'prune', 'commit', 'json'),
      pick: fc.nat(),
      size: fc.integer({ min: 1, max: 5 }),
      accepted: fc.nat(),
    });
    fc.assert(
      fc.property(fc.array(operation, { minLength: 1, maxLength: 200 }), (operations) => {
        let tree = TokenTree.create([1, 2]);
        const model = new Map<number, ModelNode>([[0, { parent: -1, tokens: [1, 2], children: [] }]]);
        let nextId = 1;
        let tokenValue = 100;
        for (const operation of operations) {
          const live = Array.from(model.keys());
          const node = live[operation.pick % live.length]!;
          const modelNode = model.get(node)!;
          if (operation.kind === 'fork') {
            const ids = tree.fork(node, operation.size);
            expect(ids).toEqual(Array.from({ length: operation.size }, (_, index) => nextId + index));
            for (const id of ids) {
              model.set(id, { parent: node, tokens: [], children: [] });
              modelNode.children.push(id);
            }
            nextId += operation.size;
          } else if (operation.kind === 'append') {
            const tokens = Array.from({ length: operation.size }, () => tokenValue++);
            if (modelNode.children.length > 0) {
              expect(() => tree.append(node, tokens)).toThrow(InvalidStateError);
            } else {
              tree.append(node, operation.size === 1 ? tokens[0]! : tokens);
              modelNode.tokens.push(...tokens);
            }
          } else if (operation.kind === 'prune') {
            if (node === 0) expect(() => tree.prune(node)).toThrow(InvalidStateError);
            else {
              const parent = model.get(modelNode.parent)!;
              parent.children.splice(parent.children.indexOf(node), 1);
              const removed = removeModelSubtree(model, node);
              expect(Array.from(tree.prune(node))).toEqual(removed);
            }
          } else if (operation.kind === 'commit') {
            // fold the path below an ancestor (picked by `accepted`) into that ancestor
            const path = [node];
            while (model.get(path[0]!)!.parent !== -1) path.unshift(model.get(path[0]!)!.parent);
            const into = path[operation.accepted % path.length]!;
            const accepted =
              node === into ? modelNode.tokens.length : operation.accepted % (modelNode.tokens.length + 1);
            const chain = path.slice(path.indexOf(into) + 1);
            const gathered = chain.flatMap((id) =>
              id === node ? modelNode.tokens.slice(0, accepted) : model.get(id)!.tokens,
            );
            const intoNode = model.get(into)!;
            const removed = modelDfs(model, into).slice(1);
            const result = tree.commitPath(node, accepted, into);
            expect(Array.from(result.removed)).toEqual(removed);
            expect(Array.from(result.merged)).toEqual(chain);
            for (const id of removed) model.delete(id);
            intoNode.children = [];
            intoNode.tokens.push(...gathered);
          } else {
            tree = TokenTree.fromJSON(JSON.parse(JSON.stringify(tree.toJSON())));
          }
        }
        expectMatchesModel(tree, model);
      }),
      { numRuns: 150 },
    );
  });

  it('keeps tokens intact across store relocation and compaction', () => {
    const tree = TokenTree.create([]);
    const leaves = tree.fork(tree.root, 200);
    const expected = new Map<number, number[]>(leaves.map((leaf) => [leaf, []]));
    for (let round = 0; round < 300; round++) {
      for (const leaf of leaves) {
        const token = (round * 7919 + leaf) % 50_000;
        tree.append(leaf, token);
        expected.get(leaf)!.push(token);
      }
      if (round % 50 === 49) {
        const victim = leaves.splice(round % leaves.length, 1)[0]!;
        tree.prune(victim);
        expected.delete(victim);
      }
    }
    for (const [leaf, tokens] of expected) expect(Array.from(tree.tokens(leaf))).toEqual(tokens);
  });
});
