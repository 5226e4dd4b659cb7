/// <reference lib="dom" />
import { type AttentionShape, PLAN_STRATEGIES } from '@deft/core';
import { randomTreeCase } from '@deft/testing';
import { createWebGpuBackend } from '../backend/webgpu-backend.js';
import { requestWebGpuDevice } from '../device/request-device.js';
import { checkTreeAttention, type StrategyCheck } from '../test-support/check-tree-attention.js';

/** What the page reports back to the browser test. */
export interface BrowserCheckReport {
  readonly adapter: string;
  readonly features: Readonly<Record<string, unknown>>;
  readonly cases: readonly {
    readonly description: string;
    readonly kvDtype: string;
    readonly results: readonly StrategyCheck[];
  }[];
}

/**
 * Runs in the page: the same kernels as in Node, on `navigator.gpu`, every strategy checked against the
 * float64 reference on a few seeded random trees.
 */
async function runDeftCheck(seeds: readonly number[]): Promise<BrowserCheckReport> {
  const handle = await requestWebGpuDevice();
  const backend = createWebGpuBackend({ device: handle.device });
  const cases: BrowserCheckReport['cases'][number][] = [];
  try {
    for (const seed of seeds) {
      const testCase = randomTreeCase(seed);
      for (const kvDtype of ['f16', 'f32'] as const) {
        const shape: AttentionShape = { numHeads: 4, numKvHeads: 2, headDim: 8, kvDtype };
        const results = await checkTreeAttention(backend, testCase, shape, {
          seed: 500 + seed,
          strategies: PLAN_STRATEGIES,
        });
        cases.push({ description: testCase.description, kvDtype, results });
      }
    }
    return { adapter: handle.description, features: { ...backend.features }, cases };
  } finally {
    backend.dispose();
    handle.dispose();
  }
}

(globalThis as { runDeftCheck?: typeof runDeftCheck }).runDeftCheck = runDeftCheck;
