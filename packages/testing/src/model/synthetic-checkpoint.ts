import { f32ToF16Bits } from '@deft/core';
import {
  decodeHostWeight,
  type HostWeight,
  type LlamaCheckpoint,
  type LlamaConfig,
  type LlamaLayerWeights,
} from '@deft/model';
import { GGML_TYPE_IDS, quantizeBlocks, type TestQuantization } from './quantize-blocks.js';
import {
  f32Bytes,
  type MetadataValue,
  seededValues,
  type TestTensor,
  u16Bytes,
  writeGguf,
} from './write-test-files.js';

/** A tiny random Llama (dim 8, 2 heads, 1 KV head, 2 layers, vocab 16), separate head unless `tied`. */
export function syntheticCheckpoint(tied = false, seed = 1): LlamaCheckpoint {
  const config: LlamaConfig = {
    dim: 8,
    hiddenDim: 12,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 4,
    vocabSize: 16,
    contextLength: 32,
    normEpsilon: 1e-5,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    tiedEmbeddings: tied,
  };
  let next = seed * 1000;
  const values = (count: number) => seededValues(next++, count);
  const layers: LlamaLayerWeights[] = Array.from({ length: config.numLayers }, () => ({
    attentionNorm: values(8).map((value) => 1 + value),
    query: values(8 * 8),
    key: values(4 * 8),
    value: values(4 * 8),
    attentionOutput: values(8 * 8),
    ffnNorm: values(8).map((value) => 1 + value),
    ffnGate: values(12 * 8),
    ffnDown: values(8 * 12),
    ffnUp: values(12 * 8),
  }));
  return {
    config,
    weights: {
      tokenEmbedding: values(16 * 8),
      layers,
      finalNorm: values(8).map((value) => 1 + value),
      ...(tied ? {} : { output: values(16 * 8) }),
    },
  };
}

/**
 * Seeded random weights for any config (biases when `attentionBias`, Q/K norms when `queryKeyNorm`),
 * scaled so activations stay in a sane range whatever the width: matrices uniform in ±0.5/sqrt(in) · 2,
 * norms near 1.
 */
export function randomCheckpoint(config: LlamaConfig, seed = 1): LlamaCheckpoint {
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize } = config;
  let next = seed * 7919;
  const values = (count: number, scale = 1) => seededValues(next++, count).map((value) => value * scale);
  const matrix = (rows: number, columns: number) => values(rows * columns, 2 / Math.sqrt(columns));
  const norm = (size: number) => values(size, 0.4).map((value) => 1 + value);
  const layers: LlamaLayerWeights[] = Array.from({ length: config.numLayers }, () => ({
    attentionNorm: norm(dim),
    query: matrix(numHeads * headDim, dim),
    key: matrix(numKvHeads * headDim, dim),
    value: matrix(numKvHeads * headDim, dim),
    attentionOutput: matrix(dim, numHeads * headDim),
    ffnNorm: norm(dim),
    ffnGate: matrix(hiddenDim, dim),
    ffnDown: matrix(dim, hiddenDim),
    ffnUp: matrix(hiddenDim, dim),
    ...(config.attentionBias === true
      ? {
          queryBias: values(numHeads * headDim, 0.5),
          keyBias: values(numKvHeads * headDim, 0.5),
          valueBias: values(numKvHeads * headDim, 0.5),
        }
      : {}),
    ...(config.queryKeyNorm === true ? { queryNorm: norm(headDim), keyNorm: norm(headDim) } : {}),
  }));
  return {
    config,
    weights: {
      tokenEmbedding: values(vocabSize * dim, 2),
      layers,
      finalNorm: norm(dim),
      ...(config.tiedEmbeddings ? {} : { output: matrix(vocabSize, dim) }),
    },
  };
}

function concat(weights: HostWeight[]): Float32Array {
  const parts = weights.map((weight) => decodeHostWeight(weight));
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const result = new Float32Array(total);
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}

/** The checkpoint in llama2.c's legacy layout (header of 7 int32, negative vocab for an unshared head). */
export function writeLlama2cLegacy(checkpoint: LlamaCheckpoint): Uint8Array {
  const { config, weights } = checkpoint;
  const { layers } = weights;
  const header = new Int32Array([
    config.dim,
    config.hiddenDim,
    config.numLayers,
    config.numHeads,
    config.numKvHeads,
    config.tiedEmbeddings ? config.vocabSize : -config.vocabSize,
    config.contextLength,
  ]);
  const rope = new Float32Array((config.contextLength * config.headDim) / 2);
  const body = concat([
    weights.tokenEmbedding,
    ...layers.map((layer) => layer.attentionNorm),
    ...layers.map((layer) => layer.query),
    ...layers.map((layer) => layer.key),
    ...layers.map((layer) => layer.value),
    ...layers.map((layer) => layer.attentionOutput),
    ...layers.map((layer) => layer.ffnNorm),
    ...layers.map((layer) => layer.ffnGate),
    ...layers.map((layer) => layer.ffnDown),
    ...layers.map((layer) => layer.ffnUp),
    weights.finalNorm,
    rope,
    rope,
    ...(weights.output === undefined ? [] : [weights.output]),
  ]);
  const bytes = new Uint8Array(28 + body.length * 4);
  bytes.set(new Uint8Array(header.buffer), 0);
  bytes.set(f32Bytes(body), 28);
  return bytes;
}

/** The checkpoint in llama2.c's version-1 export layout (`ak42` magic, 256-byte header). */
export function writeLlama2cVersion1(checkpoint: LlamaCheckpoint): Uint8Array {
  const { config, weights } = checkpoint;
  const { layers } = weights;
  const header = new Uint8Array(256);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x616b3432, true);
  view.setInt32(4, 1, true);
  [
    config.dim,
    config.hiddenDim,
    config.numLayers,
    config.numHeads,
    config.numKvHeads,
    config.vocabSize,
    config.contextLength,
  ].forEach((value, index) => {
    view.setInt32(8 + index * 4, value, true);
  });
  view.setUint8(36, config.tiedEmbeddings ? 1 : 0);
  const body = concat([
    ...layers.map((layer) => layer.attentionNorm),
    ...layers.map((layer) => layer.ffnNorm),
    weights.finalNorm,
    weights.tokenEmbedding,
    ...layers.map((layer) => layer.query),
    ...layers.map((layer) => layer.key),
    ...layers.map((layer) => layer.value),
    ...layers.map((layer) => layer.attentionOutput),
    ...layers.map((layer) => layer.ffnGate),
    ...layers.map((layer) => layer.ffnDown),
    ...layers.map((layer) => layer.ffnUp),
    ...(weights.output === undefined ? [] : [weights.output]),
  ]);
  const bytes = new Uint8Array(256 + body.length * 4);
  bytes.set(header, 0);
  bytes.set(f32Bytes(body), 256);
  return bytes;
}

/** Options of {@link writeGgufCheckpoint}. */
export interface GgufCheckpointOptions {
  /**
   * GGML type of the matrices: 0 F32 (default), 1 F16, 30 BF16, or a block quantization (2 Q4_0, 3 Q4_1,
   * 6 Q5_0, 7 Q5_1, 8 Q8_0, 12 Q4_K, 13 Q5_K, 14 Q6_K: quantized for real, so rows must be whole blocks). Any other id writes
   * junk bytes of that type (for error tests).
   */
  readonly matrixType?: number;
  /** `general.architecture` (default `llama`); `qwen2` / `qwen3` need the config's biases / Q-K norms. */
  readonly architecture?: string;
  /** Extra or replaced metadata. */
  readonly metadata?: Record<string, MetadataValue>;
  /** A vocabulary to embed (`▁` for spaces). */
  readonly tokens?: string[];
  /**
   * Write `config.ropeFrequencyFactors` as a `rope_freqs.weight` tensor (default true when the config
   * has them); false leaves them to the metadata (`rope.scaling.type = linear`).
   */
  readonly ropeFreqsTensor?: boolean;
}

/** The format of each GGML type id ({@link GGML_TYPE_IDS} inverted). */
const QUANTIZATIONS: ReadonlyMap<number, TestQuantization> = new Map(
  (Object.keys(GGML_TYPE_IDS) as TestQuantization[]).map((quantization) => [
    GGML_TYPE_IDS[quantization],
    quantization,
  ]),
);

/** A matrix `[rows, columns]` as a GGUF tensor of `type` (GGUF lists it as `[columns, rows]`). */
export function ggufMatrix(
  name: string,
  values: Float32Array,
  rows: number,
  columns: number,
  type = 0,
): TestTensor {
  const shape = [columns, rows];
  if (type === 0) return { name, shape, type, data: f32Bytes(values) };
  if (type === 1)
    return { name, shape, type, data: u16Bytes(Array.from(values, (value) => f32ToF16Bits(value))) };
  if (type === 30) {
    const bits = new Uint32Array(Float32Array.from(values).buffer);
    return { name, shape, type, data: u16Bytes(Array.from(bits, (value) => value >>> 16)) };
  }
  const quantization = QUANTIZATIONS.get(type);
  if (quantization !== undefined) return { name, shape, type, data: quantizeBlocks(quantization, values) };
  return { name, shape, type, data: new Uint8Array(Math.ceil((values.length * 34) / 32)) };
}

/** The checkpoint as a GGUF file with llama.cpp tensor names and metadata keys. */
export function writeGgufCheckpoint(
  checkpoint: LlamaCheckpoint,
  options: GgufCheckpointOptions = {},
): Uint8Array {
  const { config, weights } = checkpoint;
  const architecture = options.architecture ?? 'llama';
  const matrixType = options.matrixType ?? 0;
  const matrix = (name: string, values: HostWeight, rows: number, columns: number): TestTensor =>
    ggufMatrix(name, decodeHostWeight(values), rows, columns, matrixType);
  const vector = (name: string, values: Float32Array): TestTensor => ({
    name,
    shape: [values.length],
    type: 0,
    data: f32Bytes(values),
  });
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize } = config;
  const tensors: TestTensor[] = [
    matrix('token_embd.weight', weights.tokenEmbedding, vocabSize, dim),
    vector('output_norm.weight', weights.finalNorm),
  ];
  if (weights.output !== undefined) tensors.push(matrix('output.weight', weights.output, vocabSize, dim));
  const ropeFreqsTensor = options.ropeFreqsTensor ?? true;
  if (config.ropeFrequencyFactors !== undefined && ropeFreqsTensor) {
    tensors.push(vector('rope_freqs.weight', config.ropeFrequencyFactors));
  }
  weights.layers.forEach((layer, index) => {
    const block = `blk.${index}.`;
    tensors.push(
      vector(`${block}attn_norm.weight`, layer.attentionNorm),
      matrix(`${block}attn_q.weight`, layer.query, numHeads * headDim, dim),
      matrix(`${block}attn_k.weight`, layer.key, numKvHeads * headDim, dim),
      matrix(`${block}attn_v.weight`, layer.value, numKvHeads * headDim, dim),
      matrix(`${block}attn_output.weight`, layer.attentionOutput, dim, numHeads * headDim),
      vector(`${block}ffn_norm.weight`, layer.ffnNorm),
      matrix(`${block}ffn_gate.weight`, layer.ffnGate, hiddenDim, dim),
      matrix(`${block}ffn_down.weight`, layer.ffnDown, dim, hiddenDim),
      matrix(`${block}ffn_up.weight`, layer.ffnUp, hiddenDim, dim),
    );
    for (const [key, values] of [
      ['attn_q.bias', layer.queryBias],
      ['attn_k.bias', layer.keyBias],
      ['attn_v.bias', layer.valueBias],
      ['attn_q_norm.weight', layer.queryNorm],
      ['attn_k_norm.weight', layer.keyNorm],
    ] as const) {
      if (values !== undefined) tensors.push(vector(`${block}${key}`, values));
    }
  });
  const metadata: Record<string, MetadataValue> = {
    'general.architecture': { type: 'string', value: architecture },
    [`${architecture}.context_length`]: { type: 'u32', value: config.contextLength },
    [`${architecture}.embedding_length`]: { type: 'u32', value: dim },
    [`${architecture}.block_count`]: { type: 'u32', value: config.numLayers },
    [`${architecture}.feed_forward_length`]: { type: 'u32', value: hiddenDim },
    [`${architecture}.attention.head_count`]: { type: 'u32', value: numHeads },
    [`${architecture}.attention.head_count_kv`]: { type: 'u32', value: numKvHeads },
    [`${architecture}.attention.layer_norm_rms_epsilon`]: { type: 'f32', value: config.normEpsilon },
    [`${architecture}.rope.freq_base`]: { type: 'f32', value: config.ropeTheta },
  };
  if (numHeads * headDim !== dim) {
    metadata[`${architecture}.attention.key_length`] = { type: 'u32', value: headDim };
    metadata[`${architecture}.attention.value_length`] = { type: 'u32', value: headDim };
  }
  if (config.ropeFrequencyFactors !== undefined && !ropeFreqsTensor) {
    metadata[`${architecture}.rope.scaling.type`] = { type: 'string', value: 'linear' };
    metadata[`${architecture}.rope.scaling.factor`] = { type: 'f32', value: config.ropeFrequencyFactors[0]! };
  }
  if (options.tokens !== undefined) {
    metadata['tokenizer.ggml.model'] = { type: 'string', value: 'llama' };
    metadata['tokenizer.ggml.tokens'] = { type: 'strings', value: options.tokens };
    metadata['tokenizer.ggml.scores'] = { type: 'f32s', value: options.tokens.map((_, index) => -index) };
    metadata['tokenizer.ggml.token_type'] = {
      type: 'i32s',
      value: options.tokens.map((token, index) =>
        index === 0 ? 2 : index < 3 ? 3 : /^<0x..>$/.test(token) ? 6 : 1,
      ),
    };
    metadata['tokenizer.ggml.bos_token_id'] = { type: 'u32', value: 1 };
    metadata['tokenizer.ggml.eos_token_id'] = { type: 'u32', value: 2 };
  }
  return writeGguf({ ...metadata, ...options.metadata }, tensors);
}
