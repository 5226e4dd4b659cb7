import { f32ToF16Bits } from '@deft/core';
import type { LlamaCheckpoint, LlamaConfig, LlamaLayerWeights } from '@deft/model';
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

function concat(parts: Float32Array[]): Float32Array {
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
  /** GGML type of the matrices: 0 F32 (default), 1 F16, 8 Q8_0 (bytes are junk; for error tests). */
  readonly matrixType?: number;
  readonly architecture?: string;
  /** Extra or replaced metadata. */
  readonly metadata?: Record<string, MetadataValue>;
  /** A vocabulary to embed (`▁` for spaces). */
  readonly tokens?: string[];
}

/** The checkpoint as a GGUF file with llama.cpp tensor names. */
export function writeGgufCheckpoint(
  checkpoint: LlamaCheckpoint,
  options: GgufCheckpointOptions = {},
): Uint8Array {
  const { config, weights } = checkpoint;
  const architecture = options.architecture ?? 'llama';
  const matrixType = options.matrixType ?? 0;
  const matrix = (name: string, values: Float32Array, rows: number, columns: number): TestTensor => {
    if (matrixType === 1)
      return {
        name,
        shape: [columns, rows],
        type: 1,
        data: u16Bytes(Array.from(values, (value) => f32ToF16Bits(value))),
      };
    if (matrixType === 0) return { name, shape: [columns, rows], type: 0, data: f32Bytes(values) };
    return {
      name,
      shape: [columns, rows],
      type: matrixType,
      data: new Uint8Array(Math.ceil((values.length * 34) / 32)),
    };
  };
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
  };
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
