import {
  type DType,
  InvalidArgumentError,
  InvalidStateError,
  PLAN_STRATEGIES,
  type PlanStrategy,
} from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import { PagePool } from '@deft/kv-cache';
import { LlamaModel } from '@deft/model';
import { planTreeAttention } from '@deft/planner';
import { syntheticCheckpoint } from '@deft/testing';
import { TokenTree } from '@deft/tree';
import { describe, expect, it } from 'vitest';
import { TreeModelRunner } from './tree-model-runner.js';

const backend = createCpuBackend();
const model = LlamaModel.create(backend, syntheticCheckpoint(false, 7));
const PROMPT = [1, 5, 7, 3, 9, 2, 4];

interface Setup {
  readonly pageSize?: number;
  readonly kvDtype?: DType;
  readonly planStrategy?: PlanStrategy;
}

function start(prompt: number[], setup: Setup = {}) {
  const pool = new PagePool({ numPages: 64, pageSize: setup.pageSize ?? 16 });
  const storage = model.createKVStorage({
    numPages: 64,
    pageSize: pool.pageSize,
    dtype: setup.kvDtype ?? 'f32',
  });
  const tree = TokenTree.create(prompt);
  const runner = new TreeModelRunner({
    model,
    tree,
    pool,
    storage,
    ...(setup.planStrategy ? { planner: { strategy: setup.planStrategy } } : {}),
  });
  return { pool, storage, tree, runner };
}

/** Log-probabilities after every token of `tokens`, computed as one plain sequence from scratch. */
async function sequenceRows(tokens: number[]): Promise<Float32Array[]> {
  const { tree, runner, storage } = start(tokens);
  const step = await runner.evaluate({ rows: 'all' });
  const rows = Array.from({ length: tokens.length }, (_, position) => step.row(tree.root, position)!.slice());
  runner.dispose();
  storage.dispose();
  return rows;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let maximum = 0;
  for (let index = 0; index < a.length; index++) maximum = Math.max(maximum, Math.abs(a[index]! - b[index]!));
  return maximum;
}

describe('TreeModelRunner', () => {
  const suffixes = [[3, 4], [8], [6, 6, 6, 6, 1]];

  for (const pageSize of [1, 3, 16]) {
    for (const planStrategy of PLAN_STRATEGIES) {
      it(`prefills a prompt and three branches in one pass like separate sequences (page ${pageSize}, ${planStrategy})`, async () => {
        const { tree, runner, pool, storage } = start(PROMPT, { pageSize, planStrategy });
        const branches = tree.fork(tree.root, suffixes.length);
        suffixes.forEach((suffix, index) => {
          tree.append(branches[index]!, suffix);
        });
        expect(runner.pendingTokens).toBe(PROMPT.length + 8);
        const step = await runner.evaluate({ rows: 'all' });
        expect(step.stats.queries).toBe(PROMPT.length + 8);
        expect(step.stats.kvBytesRead).toBeLessThanOrEqual(step.stats.sequenceKvBytes);
        for (const [index, suffix] of suffixes.entries()) {
          const expected = await sequenceRows([...PROMPT, ...suffix]);
          for (let position = 0; position < PROMPT.length; position++) {
            expect(maxDifference(step.row(tree.root, position)!, expected[position]!)).toBeLessThan(1e-5);
          }
          for (let position = 0; position < suffix.length; position++) {
            expect(
              maxDifference(step.row(branches[index]!, position)!, expected[PROMPT.length + position]!),
            ).toBeLessThan(1e-5);
          }
        }
        // One more token per leaf: one query each, reading the shared prompt once under a DeFT plan.
        branches.forEach((branch) => {
          tree.append(branch, 11);
        });
        const next = await runner.evaluate();
        expect(next.rows).toBe(3);
        for (const [index, suffix] of suffixes.entries()) {
          const expected = await sequenceRows([...PROMPT, ...suffix, 11]);
          expect(maxDifference(next.row(branches[index]!)!, expected.at(-1)!)).toBeLessThan(1e-5);
        }
        if (planStrategy !== 'sequence')
          expect(next.stats.kvBytesRead).toBeLessThan(next.stats.sequenceKvBytes);
        else expect(next.stats.kvBytesRead).toBe(next.stats.sequenceKvBytes);
        expect(next.stats.pagesShared).toBe(Math.ceil(PROMPT.length / pageSize));
        runner.dispose();
        expect(pool.usedCount).toBe(0);
        storage.dispose();
      });
    }
  }

  for (const pageSize of [3, 16, 9]) {
    it(`keeps the KV of accepted draft tokens across a speculative commit (page ${pageSize})`, async () => {
      const { tree, runner, pool, storage } = start(PROMPT, { pageSize });
      await runner.evaluate();
      tree.append(tree.root, 12);
      const [draftA, draftB] = tree.fork(tree.root, 2);
      tree.append(draftA!, [13, 14, 15]);
      tree.append(draftB!, [2]);
      const verify = await runner.evaluate({ rows: 'all' });
      expect(verify.rows).toBe(5);
      tree.commitPath(draftA!, 2, tree.root);
      expect(runner.computedTokens(tree.root)).toBe(PROMPT.length + 3);
      expect(runner.pendingTokens).toBe(0);
      tree.append(tree.root, 6);
      const step = await runner.evaluate();
      const expected = await sequenceRows([...PROMPT, 12, 13, 14, 6]);
      expect(maxDifference(step.row(tree.root)!, expected.at(-1)!)).toBeLessThan(1e-5);
      runner.dispose();
      expect(pool.usedCount).toBe(0);
      storage.dispose();
    });
  }

  it('chooses rows per node, computes without rows, and defers a subtree to a later pass', async () => {
    const { tree, runner, pool, storage } = start(PROMPT, { pageSize: 4 });
    const [a, b] = tree.fork(tree.root, 2);
    tree.append(a!, [3, 4]);
    tree.append(b!, [8, 9, 1]);
    // A deferred node with a pending child that is not deferred: refused, nothing computed.
    const [c] = tree.fork(b!, 1);
    tree.append(c!, 2);
    await expect(runner.evaluate({ rows: (node) => (node === b ? 'defer' : 'last') })).rejects.toSatisfy(
      InvalidArgumentError.isInstance,
    );
    await expect(runner.evaluate({ rows: () => 'sometimes' as never })).rejects.toSatisfy(
      InvalidArgumentError.isInstance,
    );
    expect(runner.pendingTokens).toBe(PROMPT.length + 6);
    const first = await runner.evaluate({
      rows: (node) => (node === tree.root ? 'none' : node === a ? 'all' : 'defer'),
    });
    expect(first.stats.queries).toBe(PROMPT.length + 2);
    expect(first.rows).toBe(2);
    expect(first.row(tree.root)).toBeUndefined();
    expect(runner.computedTokens(b!)).toBe(0);
    expect(runner.pendingTokens).toBe(4);
    const expectedA = await sequenceRows([...PROMPT, 3, 4]);
    expect(maxDifference(first.row(a!, 0)!, expectedA[PROMPT.length]!)).toBeLessThan(1e-5);
    // The deferred branch runs later and sees the prompt computed in the first pass.
    const second = await runner.evaluate();
    expect(second.stats.queries).toBe(4);
    const expectedC = await sequenceRows([...PROMPT, 8, 9, 1, 2]);
    expect(maxDifference(second.row(c!)!, expectedC.at(-1)!)).toBeLessThan(1e-5);
    // Every node 'none': KV computed, no rows.
    tree.append(a!, 5);
    const silent = await runner.evaluate({ rows: () => 'none' });
    expect(silent.rows).toBe(0);
    expect(runner.pendingTokens).toBe(0);
    runner.dispose();
    expect(pool.usedCount).toBe(0);
    storage.dispose();
  });

  it('frees pruned branches and returns every page on dispose', async () => {
    const { tree, runner, pool, storage } = start(PROMPT, { pageSize: 4 });
    const [a, b] = tree.fork(tree.root, 2);
    tree.append(a!, [1, 2, 3, 4, 5]);
    tree.append(b!, [6]);
    await runner.evaluate();
    const before = pool.usedCount;
    tree.prune(a!);
    expect(pool.usedCount).toBe(before - 2);
    await expect(runner.evaluate()).rejects.toSatisfy(InvalidStateError.isInstance);
    runner.dispose();
    runner.dispose();
    expect(pool.usedCount).toBe(0);
    storage.dispose();
  });

  it('stays within f16 rounding with f16 KV', async () => {
    const { tree, runner, storage } = start(PROMPT, { kvDtype: 'f16', pageSize: 4 });
    const step = await runner.evaluate({ rows: 'all' });
    const expected = await sequenceRows(PROMPT);
    for (let position = 0; position < PROMPT.length; position++) {
      expect(maxDifference(step.row(tree.root, position)!, expected[position]!)).toBeLessThan(5e-3);
    }
    runner.dispose();
    storage.dispose();
  });

  it('rejects a malformed batch before writing the KV cache', async () => {
    const { tree, runner, storage } = start(PROMPT, { pageSize: 4 });
    await runner.evaluate();
    const slots = runner.cache.slotsOf(tree.root);
    const before = await backend.readKV(storage, 0, slots);
    const plan = backend.preparePlan(
      planTreeAttention(
        runner.cache.view(),
        { nodes: new Int32Array([0]), positions: new Int32Array([0]) },
        { shape: model.attentionShape() },
      ),
    );
    const batch = {
      tokens: new Int32Array([99]),
      positions: new Int32Array([0]),
      slots: slots.subarray(0, 1),
      storage,
      plan,
    };
    await expect(model.forward(batch)).rejects.toThrow(/outside the vocabulary/);
    await expect(model.forward({ ...batch, tokens: new Int32Array([1, 2]) })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(
      model.forward({ ...batch, tokens: new Int32Array([1]), slots: new Int32Array([9999]) }),
    ).rejects.toThrow(/outside the storage/);
    await expect(
      model.forward({ ...batch, tokens: new Int32Array([1]), outputRows: new Int32Array([1]) }),
    ).rejects.toThrow(/outputRows/);
    const after = await backend.readKV(storage, 0, slots);
    expect(after.k).toEqual(before.k);
    plan.dispose();
    runner.dispose();
    storage.dispose();
  });

  it('runs f16 weights close to f32 weights', async () => {
    const half = LlamaModel.create(backend, syntheticCheckpoint(false, 7), { weightDtype: 'f16' });
    const pool = new PagePool({ numPages: 8, pageSize: 16 });
    const tree = TokenTree.create(PROMPT);
    const runner = new TreeModelRunner({
      model: half,
      tree,
      pool,
      storage: half.createKVStorage({ numPages: 8 }),
    });
    const step = await runner.evaluate();
    const expected = await sequenceRows(PROMPT);
    expect(maxDifference(step.row(tree.root)!, expected.at(-1)!)).toBeLessThan(2e-2);
    runner.dispose();
    half.dispose();
    half.dispose();
    await expect(half.forward({} as never)).rejects.toThrow(/after dispose/);
  });
});
