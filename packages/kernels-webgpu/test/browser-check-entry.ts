/// <reference lib="dom" />
import { type AttentionShape, PLAN_STRATEGIES } from '@deft/core';
import { checkTreeAttention, randomTreeCase, type StrategyCheck } from '@deft/testing/browser';
import { createWebGpuBackend } from '../src/backend/webgpu-backend.js';
import { requestWebGpuDevice } from '../src/device/request-device.js';

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
