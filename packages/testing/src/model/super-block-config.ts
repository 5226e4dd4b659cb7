import type { LlamaConfig } from '@deft/model';

/**
 * A small Llama config whose rows are one K-quant super-block wide (`dim` 256, `hiddenDim` 512), so a
 * file can hold every matrix in any block quantization: two layers, grouped-query attention (4 heads of
 * 64 over 2 KV heads), interleaved RoPE with theta 10000, an untied output head. Spread it to set an
 * architecture's own settings.
 *
 * @example
 * ```ts
 * const config = superBlockConfig({ vocabSize: 96, contextLength: 64 });
 * const file = writeGgufCheckpoint(randomCheckpoint(config), { matrixType: GGML_TYPE_IDS.q4_k });
 * ```
 */
export function superBlockConfig({
  vocabSize,
  contextLength,
}: {
  vocabSize: number;
  contextLength: number;
}): LlamaConfig {
  return {
    dim: 256,
    hiddenDim: 512,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 64,
    vocabSize,
    contextLength,
    normEpsilon: 1e-5,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    tiedEmbeddings: false,
  };
}
