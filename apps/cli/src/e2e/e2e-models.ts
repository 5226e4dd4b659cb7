import type { LlamaConfig } from '@deft/model';

const LLAMA3 = {
  numHeads: 32,
  numKvHeads: 8,
  vocabSize: 128256,
  normEpsilon: 1e-5,
  ropeTheta: 500000,
  ropeStyle: 'interleaved',
} as const;

/**
 * The model shapes `deft bench-e2e` decodes with seeded random weights:
 * - `llama3-8b`: Llama-3-8B (32 layers, hidden 4096, 32/8 heads of 128, FFN 14336, vocab 128256, untied head);
 * - `llama3.2-1b`: Llama-3.2-1B (16 layers, hidden 2048, 32/8 heads of 64, FFN 8192, vocab 128256, tied head);
 * - `tiny`: two layers of width 64 (a CPU run of the command, not a measurement of anything).
 */
export const E2E_MODELS: Readonly<Record<string, LlamaConfig>> = {
  'llama3-8b': {
    ...LLAMA3,
    dim: 4096,
    hiddenDim: 14336,
    numLayers: 32,
    headDim: 128,
    contextLength: 8192,
    tiedEmbeddings: false,
  },
  'llama3.2-1b': {
    ...LLAMA3,
    dim: 2048,
    hiddenDim: 8192,
    numLayers: 16,
    headDim: 64,
    contextLength: 131072,
    tiedEmbeddings: true,
  },
  tiny: {
    ...LLAMA3,
    dim: 64,
    hiddenDim: 128,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    vocabSize: 512,
    contextLength: 8192,
    tiedEmbeddings: false,
  },
};

/** Elements of the weight matrices one decoding step streams (projections, FFN and the output head). */
export function matmulWeightCount(config: LlamaConfig): number {
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, numLayers, vocabSize } = config;
  const attention = dim * (numHeads + 2 * numKvHeads) * headDim + numHeads * headDim * dim;
  const ffn = 3 * dim * hiddenDim;
  return numLayers * (attention + ffn) + vocabSize * dim;
}
