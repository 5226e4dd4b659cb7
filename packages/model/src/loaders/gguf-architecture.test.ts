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
  describe('weight types', () => {
    const wide: LlamaConfig = { ...base, dim: 256, hiddenDim: 512, headDim: 64, vocabSize: 48 };
    const TYPES: [string, number, string | undefined][] = [
      ['F16', 1, 'f16'],
      ['BF16', 30, 'bf16'],
      ['Q8_0', 8, 'q8_0'],
      ['Q4_0', 2, 'q4_0'],
      ['Q4_1', 3, 'q4_1'],
      ['Q5_0', 6, 'q5_0'],
      ['Q5_1', 7, 'q5_1'],
      ['Q4_K', 12, 'q4_k'],
      ['Q5_K', 13, 'q5_k'],
      ['Q6_K', 14, 'q6_k'],
    ];
    for (const [typeName, type, encoding] of TYPES) {
      it(`${typeName}: matrices stay in the file's encoding, the CPU holds quantized ones as blocks, logits as the reference`, async () => {
        const checkpoint = randomCheckpoint(wide, 5);
        const loaded = await parseGgufModel(writeGgufCheckpoint(checkpoint, { matrixType: type }));
        expect((loaded.weights.layers[0]!.query as { encoding?: string }).encoding).toBe(encoding);
        const backend = createCpuBackend();
        const created: string[] = [];
        const create = backend.ops.createQuantizedWeight!.bind(backend.ops);
        (backend.ops as { createQuantizedWeight: typeof create }).createQuantizedWeight = (
          shape,
          quantization,
          blocks,
        ) => {
          created.push(quantization);
          return create(shape, quantization, blocks);
        };
        const model = LlamaModel.create(backend, loaded);
        try {
          // token_embd, output and 7 matrices per layer.
          expect(created).toHaveLength(type === 1 || type === 30 ? 0 : 2 + 7 * wide.numLayers);
          const logits = await prefillLogits(
            model,
            PROMPT.map((token) => token % wide.vocabSize),
          );
          const expected = referenceLogits(
            loaded,
            PROMPT.map((token) => token % wide.vocabSize),
          );
          expect(relativeError(logits, expected)).toBeLessThan(1e-5);
          // The quantization error itself stays small against the f32 weights it came from.
          expect(
            relativeError(
              logits,
              referenceLogits(
                checkpoint,
                PROMPT.map((token) => token % wide.vocabSize),
              ),
            ),
          ).toBeLessThan(type === 2 || type === 12 ? 0.2 : 0.1);
        } finally {
          model.dispose();
          backend.dispose();
        }
      });
    }
  });
});
