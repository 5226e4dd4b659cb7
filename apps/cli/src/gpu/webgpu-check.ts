import { type AttentionShape, PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import type { WebGpuBackend } from '@deft/kernels-webgpu';
import { ATTENTION_TOLERANCE, checkTreeAttention, randomTreeCase } from '@deft/testing';

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
 * queries, shuffled pages) against the float64 reference, for f16 and f32 KV, with the given shape,
 * through the shared `checkTreeAttention` harness (KV in layer 1 of two, outputs poisoned, plans validated).
 */
export async function runWebGpuCheck(
  backend: WebGpuBackend,
  options: { readonly seeds: number; readonly shape: Omit<AttentionShape, 'kvDtype'> },
): Promise<WebGpuCheckCase[]> {
  const results: WebGpuCheckCase[] = [];
  for (let seed = 0; seed < options.seeds; seed++) {
    const testCase = randomTreeCase(seed);
    for (const kvDtype of ['f16', 'f32'] as const) {
      const checks = await checkTreeAttention(
        backend,
        testCase,
        { ...options.shape, kvDtype },
        { seed: seed + 101, strategies: PLAN_STRATEGIES },
      );
      for (const { strategy, relativeError } of checks) {
        results.push({
          description: testCase.description,
          kvDtype,
          strategy,
          relativeError,
          passed: relativeError < ATTENTION_TOLERANCE[kvDtype],
        });
      }
    }
  }
  return results;
}
