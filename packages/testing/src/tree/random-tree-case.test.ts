import { InvalidArgumentError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { buildPagedTree } from './build-paged-tree.js';
import { defaultQueries } from './default-queries.js';
import { RANDOM_TREE_KINDS, randomTreeCase } from './random-tree-case.js';
import { SeededRandom } from './seeded-random.js';

describe('testing fixtures', () => {
  it('buildPagedTree lays out nodes on fresh, shuffled pages with sparse ids', () => {
    const nodes = [
      { parent: -1, tokens: 17 },
      { parent: 0, tokens: 0 },
      { parent: 0, tokens: 16 },
      { parent: 2, tokens: 1 },
    ];
    const plain = buildPagedTree(nodes, 16);
    expect(Array.from(plain.view.order)).toEqual([0, 1, 2, 3]);
    expect(Array.from(plain.view.pages)).toEqual([0, 1, 2, 3]);
    expect(plain.numSlots).toBe(64);
    const seeded = buildPagedTree(nodes, 16, { seed: 3 });
    const slots = new Set<number>();
    nodes.forEach((node, index) => {
      const id = seeded.nodeIds[index]!;
      expect(seeded.view.tokenCount[id]).toBe(node.tokens);
      expect(seeded.view.parent[id]).toBe(node.parent === -1 ? -1 : seeded.nodeIds[node.parent]);
      for (let token = 0; token < node.tokens; token++) {
        const page = seeded.view.pages[seeded.view.pageIndptr[id]! + Math.floor(token / 16)]!;
        slots.add(page * 16 + (token % 16));
      }
    });
    expect(slots.size).toBe(34); // no two tokens share a slot
    expect(Math.max(...slots)).toBeLessThan(seeded.numSlots);
    expect(Array.from(defaultQueries(seeded.view).nodes)).toEqual(
      [seeded.nodeIds[1]!, seeded.nodeIds[3]!].filter((id) => seeded.view.tokenCount[id]! > 0),
    );
  });

  it('buildPagedTree rejects a parent after its child and bad sizes', () => {
    expect(() =>
      buildPagedTree(
        [
          { parent: 1, tokens: 1 },
          { parent: -1, tokens: 1 },
        ],
        4,
      ),
    ).toThrow(InvalidArgumentError);
    expect(() => buildPagedTree([{ parent: -1, tokens: 1.5 }], 4)).toThrow(InvalidArgumentError);
    expect(() => buildPagedTree([{ parent: -1, tokens: 1 }], 0)).toThrow(InvalidArgumentError);
  });

  it('randomTreeCase covers every kind, 1 and 300 queries, empty leaves and both page sizes', () => {
    const seen = new Set<string>();
    let sawOneQuery = false;
    let saw300Queries = false;
    let sawEmptyLeaf = false;
    for (let seed = 0; seed < 48; seed++) {
      const testCase = randomTreeCase(seed, { pageSize: seed % 2 === 0 ? 1 : 16 });
      seen.add(testCase.kind);
      expect(testCase.kind).toBe(RANDOM_TREE_KINDS[seed % RANDOM_TREE_KINDS.length]);
      const count = testCase.queries.nodes.length;
      sawOneQuery ||= count === 1;
      saw300Queries ||= count === 300;
      sawEmptyLeaf ||= testCase.nodes.some((node) => node.tokens === 0);
      expect(randomTreeCase(seed, { pageSize: testCase.pageSize }).queries).toEqual(testCase.queries); // deterministic
    }
    expect(seen.size).toBe(RANDOM_TREE_KINDS.length);
    expect(sawOneQuery && saw300Queries && sawEmptyLeaf).toBe(true);
  });

  it('SeededRandom is reproducible and in range', () => {
    const first = new SeededRandom(9);
    const second = new SeededRandom(9);
    for (let index = 0; index < 100; index++) {
      const value = first.integer(-3, 3);
      expect(value).toBe(second.integer(-3, 3));
      expect(value).toBeGreaterThanOrEqual(-3);
      expect(value).toBeLessThanOrEqual(3);
    }
  });
});
