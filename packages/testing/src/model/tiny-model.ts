import { createCpuBackend } from '@deft/kernels-cpu';
import { type LlamaCheckpoint, LlamaModel } from '@deft/model';

function values(seed: number, count: number, offset = 0, scale = 1): Float32Array {
  let state = seed >>> 0;
  const result = new Float32Array(count);
  for (let index = 0; index < count; index++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    result[index] = offset + (state / 2 ** 32 - 0.5) * scale;
  }
  return result;
}

/** A tiny random Llama (dim 16, 4 heads, 2 KV heads, 2 layers, vocabulary 24) on the CPU backend. */
export function tinyModel(seed = 1): LlamaModel {
  const dim = 16;
  const hiddenDim = 24;
  const vocabSize = 24;
  const kvDim = 8;
  let next = seed * 100;
  const checkpoint: LlamaCheckpoint = {
    config: {
      dim,
      hiddenDim,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 4,
      vocabSize,
      contextLength: 256,
      normEpsilon: 1e-5,
      ropeTheta: 10000,
      ropeStyle: 'interleaved',
      tiedEmbeddings: false,
    },
    weights: {
      tokenEmbedding: values(next++, vocabSize * dim, 0, 2),
      layers: Array.from({ length: 2 }, () => ({
        attentionNorm: values(next++, dim, 1, 0.2),
        query: values(next++, dim * dim),
        key: values(next++, kvDim * dim),
        value: values(next++, kvDim * dim),
        attentionOutput: values(next++, dim * dim),
        ffnNorm: values(next++, dim, 1, 0.2),
        ffnGate: values(next++, hiddenDim * dim),
        ffnDown: values(next++, dim * hiddenDim),
        ffnUp: values(next++, hiddenDim * dim),
      })),
      finalNorm: values(next++, dim, 1, 0.2),
      output: values(next++, vocabSize * dim, 0, 4),
    },
  };
  return LlamaModel.create(createCpuBackend(), checkpoint);
}
