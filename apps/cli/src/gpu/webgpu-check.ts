import { type AttentionShape, PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { directTreeAttention } from '@deft/kernels-cpu/reference';
import type { WebGpuBackend } from '@deft/kernels-webgpu';
import { planTreeAttention } from '@deft/planner';
import { ATTENTION_TOLERANCE, randomTreeCase, relativeError, SeededRandom } from '@deft/testing';

/** One checked (tree, dtype, strategy). */
export interface WebGpuCheckCase {
  readonly description: string;
  readonly kvDtype: 'f16' | 'f32';
  readonly strategy: PlanStrategy;
  readonly relativeError: number;
  readonly passed: boolean;
}

/**
 * Checks every strategy on `seeds` seeded random trees (`randomTreeCase`: awkward sizes, 1 and 300
 * queries, shuffled pages) against the float64 reference, for f16 and f32 KV, with the given shape.
 */
export async function runWebGpuCheck(
  backend: WebGpuBackend,
  options: { readonly seeds: number; readonly shape: Omit<AttentionShape, 'kvDtype'> },
): Promise<WebGpuCheckCase[]> {
  const results: WebGpuCheckCase[] = [];
  const { numHeads, numKvHeads, headDim } = options.shape;
  for (let seed = 0; seed < options.seeds; seed++) {
    const testCase = randomTreeCase(seed);
    const numSlots = testCase.numPages * testCase.pageSize;
    const random = new SeededRandom(seed + 101);
    const numQueries = testCase.queries.nodes.length;
    const k = random.float32Array(numSlots * numKvHeads * headDim);
    const v = random.float32Array(numSlots * numKvHeads * headDim);
    const q = random.float32Array(numQueries * numHeads * headDim);
    const scale = 1 / Math.sqrt(headDim);
    const expected = directTreeAttention({
      view: testCase.view,
      queries: testCase.queries,
      q,
      k,
      v,
      numHeads,
      numKvHeads,
      headDim,
      scale,
    });
    for (const kvDtype of ['f16', 'f32'] as const) {
      const shape: AttentionShape = { ...options.shape, kvDtype };
      const storage = backend.createKVStorage({
        numLayers: 1,
        numPages: testCase.numPages,
        pageSize: testCase.pageSize,
        numKvHeads,
        headDim,
        dtype: kvDtype,
      });
      const qTensor = backend.createTensor({ shape: [numQueries, numHeads, headDim], dtype: 'f32' });
      const out = backend.createTensor({ shape: [numQueries, numHeads, headDim], dtype: 'f32' });
      try {
        backend.writeKV(
          storage,
          0,
          Int32Array.from({ length: numSlots }, (_, index) => index),
          k,
          v,
        );
        backend.uploadTensor(qTensor, q);
        for (const strategy of PLAN_STRATEGIES) {
          const prepared = backend.preparePlan(
            planTreeAttention(testCase.view, testCase.queries, { shape, strategy }),
          );
          try {
            backend.uploadTensor(out, new Float32Array(numQueries * numHeads * headDim).fill(Number.NaN));
            backend.treeAttention({ storage, layer: 0, plan: prepared, q: qTensor, out, scale });
            const error = relativeError(await backend.downloadTensor(out), expected);
            results.push({
              description: testCase.description,
              kvDtype,
              strategy,
              relativeError: error,
              passed: error < ATTENTION_TOLERANCE[kvDtype],
            });
          } finally {
            prepared.dispose();
          }
        }
      } finally {
        storage.dispose();
        qTensor.dispose();
        out.dispose();
      }
    }
  }
  await backend.synchronize();
  return results;
}
