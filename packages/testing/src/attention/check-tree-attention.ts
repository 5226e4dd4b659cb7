import {
  type AttentionShape,
  type Backend,
  type PagedTreeView,
  type PlanStrategy,
  type TreeQueries,
  validatePlan,
} from '@deft/core';
import { directTreeAttention } from '@deft/kernels-cpu/reference';
import { planTreeAttention } from '@deft/planner';
import { SeededRandom } from '../tree/seeded-random.js';
import { relativeError } from './relative-error.js';

/** A tree to check: what `randomTreeCase` and `buildPagedTree` return. */
export interface TreeCheckCase {
  readonly view: PagedTreeView;
  readonly queries: TreeQueries;
  readonly numPages: number;
  readonly pageSize: number;
}

/** The outcome of one strategy. */
export interface StrategyCheck {
  readonly strategy: PlanStrategy;
  /** `‖o − ref‖ / ‖ref‖` (Infinity if any output is not finite, so it never passes). */
  readonly relativeError: number;
  readonly numChunks: number;
}

/**
 * Runs every strategy's plan of a tree on `backend` (KV written to layer 1 of a 2-layer storage whose
 * layer 0 holds other values, outputs poisoned with NaN first), checks each plan with `validatePlan`, and
 * compares each output with `directTreeAttention` (float64) over the same f32 K/V.
 */
export async function checkTreeAttention(
  backend: Backend,
  testCase: TreeCheckCase,
  shape: AttentionShape,
  options: {
    readonly seed: number;
    readonly strategies: readonly PlanStrategy[];
    readonly chunkSize?: number;
    /** Queries are drawn uniform in `[-queryScale, queryScale)` (default 1): larger values sharpen the softmax. */
    readonly queryScale?: number;
  },
): Promise<StrategyCheck[]> {
  const { numHeads, numKvHeads, headDim, kvDtype } = shape;
  const random = new SeededRandom(options.seed);
  const numSlots = testCase.numPages * testCase.pageSize;
  const numQueries = testCase.queries.nodes.length;
  const k = random.float32Array(numSlots * numKvHeads * headDim);
  const v = random.float32Array(numSlots * numKvHeads * headDim);
  const queryScale = options.queryScale ?? 1;
  const q = random.float32Array(numQueries * numHeads * headDim).map((value) => value * queryScale);
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

  const storage = backend.createKVStorage({
    numLayers: 2,
    numPages: testCase.numPages,
    pageSize: testCase.pageSize,
    numKvHeads,
    headDim,
    dtype: kvDtype,
  });
  const qTensor = backend.createTensor({ shape: [numQueries, numHeads, headDim], dtype: 'f32' });
  const out = backend.createTensor({ shape: [numQueries, numHeads, headDim], dtype: 'f32' });
  const results: StrategyCheck[] = [];
  try {
    const slots = Int32Array.from({ length: numSlots }, (_, index) => index);
    backend.writeKV(storage, 0, slots, v, k); // a different layer with other values: reading it would fail
    backend.writeKV(storage, 1, slots, k, v);
    backend.uploadTensor(qTensor, q);
    const poison = new Float32Array(numQueries * numHeads * headDim).fill(Number.NaN);
    for (const strategy of options.strategies) {
      const plan = planTreeAttention(testCase.view, testCase.queries, {
        shape,
        strategy,
        ...(options.chunkSize === undefined ? {} : { chunkSize: options.chunkSize }),
      });
      validatePlan(plan, { numSlots, pageSize: testCase.pageSize, numQueries });
      const prepared = backend.preparePlan(plan);
      try {
        backend.uploadTensor(out, poison);
        backend.treeAttention({ storage, layer: 1, plan: prepared, q: qTensor, out, scale });
        const actual = await backend.downloadTensor(out);
        results.push({ strategy, relativeError: relativeError(actual, expected), numChunks: plan.numChunks });
      } finally {
        prepared.dispose();
      }
    }
    await backend.synchronize();
  } finally {
    storage.dispose();
    qTensor.dispose();
    out.dispose();
  }
  return results;
}
