import { describe, expect, it } from 'vitest';
import { attentionKernelLayout, chooseAttentionKernelConfig } from './attention-kernel-config.js';
import { attentionShader } from './attention-shader.js';
import { copyPagesShader, gatherKvShader, scatterKvShader } from './kv-transfer-shaders.js';
import { mergeShader } from './merge-shader.js';

const llama = { headDim: 128, groupSize: 4 } as const;

describe('attention kernel configuration', () => {
  it('uses 32-token tiles, 16 rows and subgroup reductions on the NVIDIA GPUs through Dawn (48 KiB, subgroups of 32, no f16)', () => {
    const config = chooseAttentionKernelConfig({
      ...llama,
      kvFormat: 'f16-packed',
      workgroupStorageBytes: 49152,
      subgroupMinSize: 32,
    })!;
    expect(config).toMatchObject({
      tileTokens: 32,
      tokensPerThread: 4,
      rowsPerThread: 1,
      subgroupLanes: 8,
      threads: 128,
    });
    const layout = attentionKernelLayout(config);
    expect(layout).toMatchObject({ tileRows: 16, tokenLanes: 8, scratchLanes: 1, outPasses: 4 });
    expect(layout.workgroupBytes).toBeLessThanOrEqual(49152);
  });

  it('shrinks the KV tile to fit 32 KiB (Mesa lavapipe, SwiftShader) and falls back to workgroup-memory reductions', () => {
    const config = chooseAttentionKernelConfig({
      ...llama,
      kvFormat: 'f16-native',
      workgroupStorageBytes: 32768,
      subgroupMinSize: 0,
    })!;
    expect(config.tileTokens).toBe(16);
    expect(config.subgroupLanes).toBe(0);
    expect(attentionKernelLayout(config).scratchLanes).toBe(attentionKernelLayout(config).tokenLanes);
    expect(attentionKernelLayout(config).workgroupBytes).toBeLessThanOrEqual(32768);
  });

  it('fits every head dimension up to 512 into 16 KiB or says it cannot', () => {
    for (let headDim = 4; headDim <= 512; headDim += 4) {
      for (const kvFormat of ['f32', 'f16-packed'] as const) {
        const config = chooseAttentionKernelConfig({
          headDim,
          groupSize: 1,
          kvFormat,
          workgroupStorageBytes: 16384,
          subgroupMinSize: 8,
        });
        if (config !== undefined)
          expect(attentionKernelLayout(config).workgroupBytes).toBeLessThanOrEqual(16384);
        else expect(headDim).toBeGreaterThan(64);
      }
    }
  });
});

describe('WGSL sources (snapshots: a shader change shows in review)', () => {
  it('attention, Llama-3-8B shape on an NVIDIA GPU through Dawn (packed f16, subgroups of 32, 48 KiB)', () => {
    const config = chooseAttentionKernelConfig({
      ...llama,
      kvFormat: 'f16-packed',
      workgroupStorageBytes: 49152,
      subgroupMinSize: 32,
    })!;
    expect(attentionShader(config)).toMatchSnapshot();
  });

  it('attention, native f16 with mixed subgroup / workgroup-memory reductions (lavapipe: subgroups of 8)', () => {
    const config = chooseAttentionKernelConfig({
      headDim: 16,
      groupSize: 2,
      kvFormat: 'f16-native',
      workgroupStorageBytes: 32768,
      subgroupMinSize: 8,
    })!;
    expect(attentionShader(config)).toMatchSnapshot();
  });

  it('attention, f32 KV without subgroups', () => {
    const config = chooseAttentionKernelConfig({
      headDim: 12,
      groupSize: 3,
      kvFormat: 'f32',
      workgroupStorageBytes: 16384,
      subgroupMinSize: 0,
    })!;
    expect(attentionShader(config)).toMatchSnapshot();
  });

  it('merge and KV transfer kernels', () => {
    expect(mergeShader(128)).toMatchSnapshot();
    expect(scatterKvShader('f16-packed')).toMatchSnapshot();
    expect(gatherKvShader('f16-native')).toMatchSnapshot();
    expect(scatterKvShader('f32')).toMatchSnapshot();
    expect(copyPagesShader()).toMatchSnapshot();
  });
});
