import { type AttentionShape, PLAN_STRATEGIES } from '@deft/core';
import { buildPagedTree, checkTreeAttention, randomTreeCase } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { createWebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend.js';

const testDevice = await openTestDevice();
if (testDevice.handle === undefined)
  console.warn(`WebGPU tree-attention tests skipped: ${testDevice.skipReason}`);
else console.info(`WebGPU tests on ${testDevice.handle.description} via ${testDevice.driver}`);

const TOLERANCE = { f16: 2e-3, f32: 1e-5 } as const;

/** Small shapes keep a CPU Vulkan driver fast; group sizes 2 and 3, head dims 8 and 12 (3 units). */
const SMALL_SHAPES: readonly Omit<AttentionShape, 'kvDtype'>[] = [
  { numHeads: 4, numKvHeads: 2, headDim: 8 },
  { numHeads: 6, numKvHeads: 2, headDim: 12 },
];

interface Variant {
  readonly name: string;
  readonly options: Omit<WebGpuBackendOptions, 'device'>;
  readonly seeds: { readonly f16: readonly number[]; readonly f32: readonly number[] };
}

/** Seeds cycle through the six random tree kinds (random, deep-chain, speculative, wide, single-query, causal). */
const VARIANTS: readonly Variant[] = [
  {
    name: 'device features (shader-f16, subgroups where present)',
    options: {},
    seeds: { f16: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], f32: [0, 1, 2, 3, 4, 5] },
  },
  {
    name: 'packed f16, workgroup-memory reductions',
    options: { useShaderF16: false, useSubgroups: false },
    seeds: { f16: [12, 13, 14, 15, 16, 17], f32: [18, 19, 20] },
  },
  {
    name: 'small workgroup memory (8 KiB tiles)',
    options: { maxWorkgroupStorageBytes: 8192 },
    seeds: { f16: [1, 3], f32: [2] },
  },
];

describe.skipIf(testDevice.handle === undefined)('WebGPU tree attention against directTreeAttention', () => {
  const device = testDevice.handle!.device;
  afterAll(() => testDevice.handle?.dispose());

  for (const variant of VARIANTS) {
    describe(variant.name, () => {
      const backend = createWebGpuBackend({ device, ...variant.options });
      afterAll(() => backend.dispose());

      for (const kvDtype of ['f16', 'f32'] as const) {
        for (const seed of variant.seeds[kvDtype]) {
          const testCase = randomTreeCase(seed);
          const base = SMALL_SHAPES[seed % SMALL_SHAPES.length]!;
          const shape: AttentionShape = { ...base, kvDtype };
          it(`${kvDtype} KV, ${testCase.description}, heads ${shape.numHeads}/${shape.numKvHeads}, headDim ${shape.headDim}`, async () => {
            const results = await checkTreeAttention(backend, testCase, shape, {
              seed: 1000 + seed,
              strategies: PLAN_STRATEGIES,
            });
            for (const result of results) {
              expect(result.relativeError, `${result.strategy} (${result.numChunks} chunks)`).toBeLessThan(
                TOLERANCE[kvDtype],
              );
            }
          });
        }
      }
    });
  }

  describe('chunks longer than a KV tile and many row tiles', () => {
    const backend = createWebGpuBackend({ device });
    afterAll(() => backend.dispose());
    // SwiftShader (a fallback CPU driver) runs barrier-heavy kernels slowly; the suite's timeout only
    // catches hangs, so no per-test limit here.
    it('deft-node over a 700-token root seen by 40 queries, explicit chunk sizes 1 and 333', async () => {
      const nodes = [{ parent: -1, tokens: 700 }];
      for (let branch = 0; branch < 40; branch++) nodes.push({ parent: 0, tokens: 1 + (branch % 17) });
      const tree = buildPagedTree(nodes, 16, { seed: 3 });
      const queryNodes: number[] = [];
      const positions: number[] = [];
      nodes.forEach((node, index) => {
        if (index > 0) {
          queryNodes.push(tree.nodeIds[index]!);
          positions.push(node.tokens - 1);
        }
      });
      const testCase = {
        ...tree,
        pageSize: 16,
        queries: { nodes: Int32Array.from(queryNodes), positions: Int32Array.from(positions) },
      };
      const shape: AttentionShape = { numHeads: 8, numKvHeads: 2, headDim: 16, kvDtype: 'f16' };
      for (const chunkSize of [1, 333]) {
        const results = await checkTreeAttention(backend, testCase, shape, {
          seed: 7,
          strategies: PLAN_STRATEGIES,
          chunkSize,
        });
        for (const result of results) {
          expect(result.relativeError, `${result.strategy}, chunkSize ${chunkSize}`).toBeLessThan(
            TOLERANCE.f16,
          );
        }
      }
    });
  });

  describe('Llama-3-8B attention shape (32 heads, 8 KV heads, head dim 128)', () => {
    const backend = createWebGpuBackend({ device });
    afterAll(() => backend.dispose());
    for (const kvDtype of ['f16'] as const) {
      it(`${kvDtype} KV: a speculative tree with 24 one-token leaves over a 200-token prefix`, async () => {
        const nodes = [{ parent: -1, tokens: 200 }];
        for (let leaf = 0; leaf < 24; leaf++)
          nodes.push({ parent: leaf < 8 ? 0 : 1 + (leaf % 8), tokens: 1 });
        const tree = buildPagedTree(nodes, 16, { seed: 11 });
        const leaves = nodes.map((_, index) => index).filter((index) => index > 8);
        const testCase = {
          ...tree,
          pageSize: 16,
          queries: {
            nodes: Int32Array.from(leaves, (index) => tree.nodeIds[index]!),
            positions: new Int32Array(leaves.length),
          },
        };
        const shape: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype };
        const results = await checkTreeAttention(backend, testCase, shape, {
          seed: 5,
          strategies: ['deft-flatten', 'sequence'],
        });
        for (const result of results)
          expect(result.relativeError, result.strategy).toBeLessThan(TOLERANCE[kvDtype]);
      });
    }
  });
});
