import { CapacityError, InvalidArgumentError, InvalidStateError, NotFoundError } from '@deft/core';
import { TokenTree } from '@deft/tree';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createKVSimulation, type KVSimulation, prefixValues } from '../../test/kv-simulation.js';
import { PagePool } from '../pool/page-pool.js';
import { PrefixCache } from './prefix-cache.js';
import { TreeKVCache } from './tree-kv-cache.js';

/** An error class of `@deft/core`, recognised through its marker. */
type ErrorType = (new (message: string) => Error) & { isInstance(value: unknown): boolean };

interface Request {
  readonly tree: TokenTree;
  readonly cache: TreeKVCache;
}

interface World {
  readonly pool: PagePool;
  readonly prefixCache: PrefixCache;
  readonly simulation: KVSimulation;
  readonly requests: Request[];
}

const BASE_PROMPTS = [
  [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1],
  [3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2],
];

const operation = fc.record({
  kind: fc.constantFrom(
    'request',
    'fork',
    'append',
    'append',
    'append',
    'prune',
    'commit',
    'cachePath',
    'finish',
    'evict',
    'bad',
  ),
  pick: fc.nat(),
  other: fc.nat(),
  size: fc.integer({ min: 1, max: 40 }),
});

/** Everything observable about pages: compared before and after an operation that must fail. */
function snapshot(world: World): string {
  const pages = Array.from({ length: world.pool.numPages }, (_, page) => world.pool.refcount(page));
  const requests = world.requests.map(({ tree, cache }) => ({
    tree: tree.toJSON(),
    version: tree.version,
    nodes: Array.from(tree.dfsOrder(), (node) => [
      node,
      cache.tokenCount(node),
      Array.from(cache.pagesOf(node)),
    ]),
  }));
  return JSON.stringify({
    pages,
    free: Array.from(world.pool.freePages()).sort((a, b) => a - b),
    cached: Array.from(world.prefixCache.pages()),
    requests,
  });
}

function fail(message: string): never {
  throw new Error(message);
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) fail(`${what}: expected ${b}, got ${a}`);
}

function checkInvariants(world: World): void {
  const { pool, prefixCache, simulation } = world;
  const holders = new Int32Array(pool.numPages);
  for (const page of prefixCache.pages()) holders[page]!++;
  for (const { tree, cache } of world.requests) {
    same(cache.nodeCount, tree.nodeCount, 'node count');
    const order = tree.dfsOrder();
    const view = cache.view();
    same(Array.from(view.order), Array.from(order), 'view order');
    for (const node of order) {
      const count = tree.tokenCount(node);
      same([cache.tokenCount(node), view.tokenCount[node]], [count, count], `token count of ${node}`);
      same(view.parent[node], tree.parent(node), `parent of ${node}`);
      const pages = cache.pagesOf(node);
      same(pages.length, Math.ceil(count / pool.pageSize), `page count of ${node}`);
      same(
        Array.from(view.pages.subarray(view.pageIndptr[node]!, view.pageIndptr[node + 1]!)),
        Array.from(pages),
        `view pages of ${node}`,
      );
      for (const page of pages) holders[page]!++;
      // every live path's KV reads back in order and equals what was written for that prefix
      const expected = prefixValues(tree.pathTokens(node)).slice(tree.pathTokenCount(node) - count);
      same(
        Array.from(cache.slotsOf(node), (slot) => simulation.values[slot]!),
        expected,
        `KV of node ${node}`,
      );
    }
  }
  let shared = 0;
  for (let page = 0; page < pool.numPages; page++) {
    // refcount = number of holders: nothing leaked, nothing held without being counted
    same(pool.refcount(page), holders[page], `refcount of page ${page}`);
    if (holders[page]! > 1) shared++;
  }
  same(pool.sharedCount, shared, 'shared pages');
  const free = Array.from(pool.freePages()).sort((a, b) => a - b);
  same(new Set(free).size, free.length, 'free list without duplicates (no double free)');
  same(
    free,
    Array.from({ length: pool.numPages }, (_, page) => page).filter((page) => holders[page] === 0),
    'free pages',
  );
  same(pool.usedCount + pool.freeCount, pool.numPages, 'used + free');
  if (prefixCache.pageCount > prefixCache.budgetPages) fail('prefix cache over budget');
}

/** Runs an operation that may fail; a failure must be a typed error that changed nothing. */
function attempt(world: World, run: () => void, allowed: readonly ErrorType[]): boolean {
  const before = snapshot(world);
  try {
    run();
    return true;
  } catch (error) {
    if (!allowed.some((type) => type.isInstance(error))) {
      throw error;
    }
    expect((error as Error).message.length).toBeGreaterThan(20);
    expect(snapshot(world)).toBe(before);
    return false;
  }
}

function writeNewTokens(world: World, request: Request, node: number, from: number): void {
  const { tree, cache } = request;
  const count = tree.tokenCount(node);
  const values = prefixValues(tree.pathTokens(node)).slice(tree.pathTokenCount(node) - count);
  const slots = cache.slotsOf(node, from);
  for (let index = 0; index < slots.length; index++)
    world.simulation.values[slots[index]!] = values[from + index]!;
}

function tokensFor(seed: number, size: number): number[] {
  return Array.from({ length: size }, (_, index) => ((seed >>> (index % 16)) + index) % 3);
}

describe('TreeKVCache properties', () => {
  it('keeps pages, refcounts and KV consistent over long random fork / append / prune / commit / evict sequences', () => {
    fc.assert(
      fc.property(
        fc.record({
          numPages: fc.integer({ min: 6, max: 48 }),
          pageSize: fc.constantFrom(1, 2, 3, 4, 16),
          budget: fc.integer({ min: 0, max: 40 }),
        }),
        fc.array(operation, { minLength: 20, maxLength: 100 }),
        (config, operations) => {
          const pool = new PagePool({ numPages: config.numPages, pageSize: config.pageSize });
          const world: World = {
            pool,
            prefixCache: new PrefixCache({ pool, budgetPages: config.budget }),
            simulation: createKVSimulation(config.numPages, config.pageSize),
            requests: [],
          };
          const newRequest = (pick: number, size: number): void => {
            const base = BASE_PROMPTS[pick % BASE_PROMPTS.length]!;
            const prompt = [...base.slice(0, 1 + (size % base.length)), ...tokensFor(pick, pick % 3)];
            const tree = TokenTree.create(prompt);
            const { simulation } = world;
            const cache = new TreeKVCache({ pool, prefixCache: world.prefixCache, ...simulation });
            const request = { tree, cache };
            attempt(world, () => {
              const { reusedTokens } = cache.attach(
                tree,
                pick % 2 === 0 ? {} : { maxReusedTokens: prompt.length },
              );
              world.requests.push(request);
              writeNewTokens(world, request, tree.root, reusedTokens);
            }, [CapacityError]);
          };
          newRequest(0, 5);
          for (const op of operations) {
            if (op.kind === 'request' || world.requests.length === 0) {
              newRequest(op.pick, op.size);
              checkInvariants(world);
              continue;
            }
            const request = world.requests[op.pick % world.requests.length]!;
            const { tree, cache } = request;
            const order = tree.dfsOrder();
            const node = order[op.other % order.length]!;
            switch (op.kind) {
              case 'fork':
                tree.fork(node, 1 + (op.size % 3));
                break;
              case 'append': {
                const start = tree.tokenCount(node);
                const tokens = tokensFor(op.pick, op.size);
                const ok = attempt(world, () => tree.append(node, tokens), [
                  CapacityError,
                  InvalidStateError,
                ]);
                if (ok) writeNewTokens(world, request, node, start);
                break;
              }
              case 'prune':
                attempt(world, () => tree.prune(node), [InvalidStateError]);
                break;
              case 'commit': {
                const path = tree.path(node);
                const into = path[op.size % path.length]!;
                const accepted =
                  node === into ? tree.tokenCount(node) : op.pick % (tree.tokenCount(node) + 1);
                attempt(world, () => tree.commitPath(node, accepted, into), [CapacityError]);
                break;
              }
              case 'cachePath':
                cache.cachePath(node);
                break;
              case 'finish':
                for (const leaf of tree.leaves()) cache.cachePath(leaf);
                cache.dispose();
                world.requests.splice(world.requests.indexOf(request), 1);
                break;
              case 'evict':
                world.prefixCache.evict(1 + (op.size % 4));
                break;
              default: {
                // bad input: typed errors, nothing changed
                const dead = tree.idLimit + 5;
                const leaf = tree.leaves()[0]!;
                const bad: [() => unknown, ErrorType][] = [
                  [() => tree.prune(tree.root), InvalidStateError],
                  [() => tree.prune(dead), NotFoundError],
                  [() => tree.fork(node, 0), InvalidArgumentError],
                  [() => tree.fork(node, -1), InvalidArgumentError],
                  [() => tree.append(leaf, []), InvalidArgumentError],
                  [() => cache.appendTokens(leaf, 0), InvalidArgumentError],
                  [() => cache.appendTokens(leaf, 1.5), InvalidArgumentError],
                  [() => cache.appendTokens(dead, 1), NotFoundError],
                  [() => cache.removeNodes([dead]), NotFoundError],
                  [() => pool.allocate(pool.numPages + 1), CapacityError],
                  [() => world.prefixCache.evict(0), InvalidArgumentError],
                ];
                if (!tree.isLeaf(node)) bad.push([() => tree.append(node, 1), InvalidStateError]);
                const [run, type] = bad[op.size % bad.length]!;
                const before = snapshot(world);
                expect(run).toThrow(type);
                expect(snapshot(world)).toBe(before);
              }
            }
            checkInvariants(world);
          }
          // finishing every request and clearing the cache returns every page
          for (const { cache } of world.requests) cache.dispose();
          world.prefixCache.clear();
          expect(pool.freeCount).toBe(pool.numPages);
        },
      ),
      { numRuns: 200 },
    );
  });
});
