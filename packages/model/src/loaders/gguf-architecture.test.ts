import { UnsupportedError } from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import {
  prefillLogits,
  randomCheckpoint,
  referenceLogits,
  type writeGguf,
  writeGgufCheckpoint,
} from '@deft/testing';
import { describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../config/llama-config.js';
import { LlamaModel } from '../forward/llama-model.js';
import { parseGgufModel } from './gguf-model.js';

const base: LlamaConfig = {
  dim: 32,
  hiddenDim: 48,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  vocabSize: 40,
  contextLength: 128,
  normEpsilon: 1e-5,
  ropeTheta: 10000,
  ropeStyle: 'interleaved',
  tiedEmbeddings: false,
};

/** One small model per supported architecture and setting the loader reads from the file. */
const CASES: { name: string; architecture: string; config: LlamaConfig; ropeFreqsTensor?: boolean }[] = [
  { name: 'Llama 2 (untied)', architecture: 'llama', config: base },
  {
    name: 'Llama 3.2 (tied, rope_freqs, theta 500000)',
    architecture: 'llama',
    config: {
      ...base,
      tiedEmbeddings: true,
      ropeTheta: 500000,
      ropeFrequencyFactors: Float32Array.of(1, 1.5, 4, 32),
    },
  },
  {
    name: 'Llama with linear RoPE scaling',
    architecture: 'llama',
    config: { ...base, ropeFrequencyFactors: new Float32Array(4).fill(2) },
    ropeFreqsTensor: false,
  },
  {
    name: 'Qwen 2 (QKV bias, tied, half RoPE)',
    architecture: 'qwen2',
    config: {
      ...base,
      ropeStyle: 'half',
      attentionBias: true,
      tiedEmbeddings: true,
      normEpsilon: 1e-6,
      ropeTheta: 1000000,
    },
  },
  {
    name: 'Qwen 3 (per-head Q/K norm, head width apart from dim)',
    architecture: 'qwen3',
    config: { ...base, ropeStyle: 'half', queryKeyNorm: true, headDim: 16, normEpsilon: 1e-6 },
  },
];

const PROMPT = [3, 17, 5, 39, 0, 22, 22, 8, 31, 12, 1, 19, 2, 7, 33, 25, 14, 9];

function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let difference = 0;
  let norm = 0;
  for (let index = 0; index < expected.length; index++) {
    difference += (actual[index]! - expected[index]!) ** 2;
    norm += expected[index]! ** 2;
  }
  return Math.sqrt(difference / norm);
}

describe('GGUF architectures', () => {
  for (const testCase of CASES) {
    it(`${testCase.name}: every hyper-parameter from the metadata, logits as the float64 reference`, async () => {
      const checkpoint = randomCheckpoint(testCase.config, 3);
      const bytes = writeGgufCheckpoint(checkpoint, {
        architecture: testCase.architecture,
        ...(testCase.ropeFreqsTensor === undefined ? {} : { ropeFreqsTensor: testCase.ropeFreqsTensor }),
      });
      const loaded = await parseGgufModel(bytes, `${testCase.architecture}.gguf`);
      expect(loaded.config).toEqual({
        ...testCase.config,
        normEpsilon: Math.fround(testCase.config.normEpsilon),
      });
      const model = LlamaModel.create(createCpuBackend(), loaded);
      try {
        const logits = await prefillLogits(model, PROMPT);
        const expected = referenceLogits(checkpoint, PROMPT);
        expect(relativeError(logits, expected)).toBeLessThan(1e-5);
      } finally {
        model.dispose();
      }
    });
  }

  it('the reference tells the settings apart (a test that could fail)', () => {
    const checkpoint = randomCheckpoint(CASES[1]!.config, 3);
    const without = { ...checkpoint, config: { ...checkpoint.config, ropeFrequencyFactors: undefined } };
    const { ropeFrequencyFactors: _, ...plain } = without.config;
    expect(
      relativeError(
        referenceLogits({ ...checkpoint, config: plain }, PROMPT),
        referenceLogits(checkpoint, PROMPT),
      ),
    ).toBeGreaterThan(1e-3);
  });

  it('refuses unsupported settings up front with UnsupportedError naming the key and value', async () => {
    const checkpoint = randomCheckpoint(base, 1);
    const refused: [Record<string, Parameters<typeof writeGguf>[0][string]>, RegExp][] = [
      [{ 'llama.expert_count': { type: 'u32', value: 8 } }, /llama\.expert_count = 8/],
      [
        { 'llama.rope.scaling.type': { type: 'string', value: 'yarn' } },
        /llama\.rope\.scaling\.type = "yarn"/,
      ],
      [{ 'llama.rope.dimension_count': { type: 'u32', value: 4 } }, /llama\.rope\.dimension_count = 4/],
      [{ 'llama.attention.value_length': { type: 'u32', value: 16 } }, /llama\.attention\.value_length = 16/],
      [{ 'tokenizer.ggml.model': { type: 'string', value: 'bert' } }, /tokenizer\.ggml\.model/],
    ];
    for (const [metadata, message] of refused) {
      const bytes = writeGgufCheckpoint(checkpoint, { metadata });
      const error = await parseGgufModel(bytes).catch((caught: unknown) => caught);
      expect(UnsupportedError.isInstance(error), String(error)).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    const mamba = writeGgufCheckpoint(checkpoint, { architecture: 'mamba' });
    await expect(parseGgufModel(mamba)).rejects.toThrow(/general\.architecture = "mamba"/);
  });

  it('refuses a tensor the forward pass would ignore (a variant it does not implement)', async () => {
    const checkpoint = randomCheckpoint(base, 1);
    const bytes = writeGgufCheckpoint(checkpoint);
    const withExtra = writeGgufCheckpoint(
      {
        ...checkpoint,
        config: { ...checkpoint.config, queryKeyNorm: true },
        weights: {
          ...checkpoint.weights,
          layers: checkpoint.weights.layers.map((layer) => ({
            ...layer,
            queryNorm: new Float32Array(8).fill(1),
            keyNorm: new Float32Array(8).fill(1),
          })),
        },
      },
      { architecture: 'llama' },
    );
    expect(bytes.length).toBeLessThan(withExtra.length);
    await expect(parseGgufModel(withExtra)).rejects.toThrow(
      /attn_q_norm\.weight, which the llama forward pass does not use/,
    );
  });
});
