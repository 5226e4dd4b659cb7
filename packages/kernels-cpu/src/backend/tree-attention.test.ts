import { type Backend, type DType, PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import { checkTreeAttention, RANDOM_TREE_KINDS, type RandomTreeCase, randomTreeCase } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from './create-cpu-backend.js';

interface Heads {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

async function runCase(
  backend: Backend,
  testCase: RandomTreeCase,
  heads: Heads,
  dtype: DType,
  strategies: readonly PlanStrategy[],
  chunkSize?: number,
): Promise<number> {
  const results = await checkTreeAttention(
    backend,
    testCase,
    { ...heads, kvDtype: dtype },
    {
      seed: testCase.numSlots * 31 + testCase.queries.nodes.length,
      strategies,
      queryScale: 3,
      ...(chunkSize === undefined ? {} : { chunkSize }),
    },
  );
  let worst = 0;
  for (const { strategy, relativeError } of results) {
    worst = Math.max(worst, relativeError);
    expect(relativeError, `${testCase.description}, ${strategy}, ${dtype}`).toBeLessThan(
      dtype === 'f32' ? 1e-6 : 2e-3,
    );
  }
  return worst;
}

describe('CPU tree attention matches the direct path-by-path reference', () => {
  const backend = createCpuBackend();
  const headChoices: Heads[] = [
    { numHeads: 4, numKvHeads: 2, headDim: 8 },
    { numHeads: 3, numKvHeads: 3, headDim: 5 },
    { numHeads: 4, numKvHeads: 1, headDim: 16 },
  ];

  for (const pageSize of [1, 16]) {
    it(`every strategy and kind, f32 KV, pageSize ${pageSize}`, async () => {
      let worst = 0;
      for (let seed = 0; seed < 72; seed++) {
        const testCase = randomTreeCase(seed, { pageSize });
        const heads = headChoices[seed % headChoices.length]!;
        worst = Math.max(worst, await runCase(backend, testCase, heads, 'f32', PLAN_STRATEGIES));
      }
      console.log(`pageSize ${pageSize}: worst f32 relative error ${worst.toExponential(2)}`);
    });
  }

  it('every strategy with tiny and odd chunk sizes (empty masks, chunks of 1 token)', async () => {
    for (let seed = 100; seed < 124; seed++) {
      const testCase = randomTreeCase(seed, { pageSize: seed % 2 === 0 ? 16 : 5 });
      await runCase(backend, testCase, headChoices[0]!, 'f32', PLAN_STRATEGIES, seed % 3 === 0 ? 1 : 7);
    }
  });

  it('f16 KV within 2e-3', async () => {
    for (let seed = 200; seed < 224; seed++) {
      const testCase = randomTreeCase(seed, { kind: RANDOM_TREE_KINDS[seed % RANDOM_TREE_KINDS.length]! });
      await runCase(backend, testCase, headChoices[seed % headChoices.length]!, 'f16', [
        'deft-flatten',
        'sequence',
      ]);
    }
  });

  it('IO model: deft-flatten reads unique KV once, sequence reads Σ path lengths', () => {
    for (let seed = 0; seed < 24; seed++) {
      const { view, queries } = randomTreeCase(seed);
      const shape = { numHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' as const };
      const flat = planTreeAttention(view, queries, { shape });
      expect(flat.io.kvBytesRead).toBe(flat.io.uniqueKvBytes);
      const sequence = planTreeAttention(view, queries, { strategy: 'sequence', shape });
      let pathTokens = 0;
      for (let query = 0; query < queries.nodes.length; query++) {
        pathTokens += queries.positions[query]! + 1;
        for (let node = view.parent[queries.nodes[query]!]!; node !== -1; node = view.parent[node]!)
          pathTokens += view.tokenCount[node]!;
      }
      expect(sequence.io.tokensRead).toBe(pathTokens);
      expect(sequence.io.kvBytesRead).toBe(pathTokens * 2 * 2 * 64 * 2);
    }
  });
});
