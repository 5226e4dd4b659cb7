import { DeftError, UnsupportedError } from '@deft/core';
import { GGMLQuantizationType, type GGUFTensorInfo, gguf } from '@huggingface/gguf';
import type { LlamaConfig } from '../config/llama-config.js';
import { ModelFormatError } from '../errors/model-format-error.js';
import { tokenizerFromGgufMetadata } from '../tokenizer/gguf-tokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { LlamaCheckpoint, LlamaLayerWeights } from '../weights/llama-weights.js';
import { type ByteSource, bytesSource, openFileSource } from './byte-source.js';
import { decodeBf16, decodeF16, decodeF32 } from './decode-floats.js';
import { checkGgufHeader } from './gguf-header-check.js';

/** Architectures (`general.architecture`) whose tensors follow the Llama layout. */
const SUPPORTED_ARCHITECTURES = ['llama'] as const;

/** Bytes per element of the tensor types the loader decodes. */
const ELEMENT_BYTES = new Map<number, number>([
  [GGMLQuantizationType.F32, 4],
  [GGMLQuantizationType.F16, 2],
  [GGMLQuantizationType.BF16, 2],
]);

/** A GGUF model: config, f32 host weights, the tokenizer from its metadata, and the raw metadata. */
export interface GgufModel extends LlamaCheckpoint {
  /** The SentencePiece tokenizer of the file, `undefined` when it carries no vocabulary. */
  readonly tokenizer: Tokenizer | undefined;
  /** Every metadata key-value pair of the file (arrays included). */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** A `fetch` that serves HTTP range requests from a byte source, so the GGUF parser reads files and buffers alike. */
function rangeFetch(source: ByteSource): typeof fetch {
  return (async (_input: unknown, init?: { headers?: Record<string, string> }) => {
    const range = /bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? '');
    const start = Math.min(Number(range?.[1] ?? 0), source.size);
    const end = Math.min(Number(range?.[2] ?? source.size - 1) + 1, source.size);
    const body = await source.read(start, end - start);
    return new Response(body.slice(), {
      status: 206,
      headers: { 'content-range': `bytes ${start}-${Math.max(start, end - 1)}/${source.size}` },
    });
  }) as typeof fetch;
}

/**
 * Upper bounds on the shape fields of the metadata, far above any real model, checked before anything is
 * sized from them: a hostile header must fail fast with a `ModelFormatError`, never allocate.
 */
const LIMITS: Readonly<Record<string, number>> = {
  embedding_length: 1 << 16,
  feed_forward_length: 1 << 20,
  block_count: 1 << 12,
  'attention.head_count': 1 << 12,
  'attention.head_count_kv': 1 << 12,
  context_length: 1 << 22,
  vocabulary: 1 << 22,
};

/** Checks that a shape field is an integer in `1..LIMITS[field]`. */
function checkCount(name: string, key: string, field: string, value: number): number {
  const limit = LIMITS[field]!;
  if (!Number.isInteger(value) || value < 1 || value > limit) {
    throw new ModelFormatError(
      `${name} has ${key} = ${value}, not an integer in 1..${limit}; the file is corrupt or not a Llama model`,
      { argument: key, expected: `integer in 1..${limit}`, actual: value },
    );
  }
  return value;
}

function metadataNumber(
  metadata: Readonly<Record<string, unknown>>,
  key: string,
  name: string,
  fallback?: number,
): number {
  const value = metadata[key];
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value === undefined && fallback !== undefined) return fallback;
  throw new ModelFormatError(
    `${name} lacks the metadata key ${key} (a number); the file is incomplete or not a Llama model`,
    {
      argument: key,
      expected: 'number',
      actual: value === undefined ? 'missing' : typeof value,
    },
  );
}

function configFromMetadata(
  metadata: Readonly<Record<string, unknown>>,
  name: string,
  vocabSize: number,
  tied: boolean,
): LlamaConfig {
  const architecture = metadata['general.architecture'];
  if (!SUPPORTED_ARCHITECTURES.includes(architecture as (typeof SUPPORTED_ARCHITECTURES)[number])) {
    throw new UnsupportedError(
      `${name} has architecture "${String(architecture)}"; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      { argument: 'general.architecture', expected: SUPPORTED_ARCHITECTURES, actual: architecture },
    );
  }
  const prefix = `${String(architecture)}.`;
  const read = (key: string, fallback?: number) => metadataNumber(metadata, prefix + key, name, fallback);
  if (read('expert_count', 0) > 0) {
    throw new UnsupportedError(
      `${name} is a mixture-of-experts model; only dense Llama models are supported`,
      {
        argument: `${prefix}expert_count`,
        expected: 0,
        actual: read('expert_count', 0),
      },
    );
  }
  const count = (field: string, fallback?: number) =>
    checkCount(name, prefix + field, field, read(field, fallback));
  const dim = count('embedding_length');
  const numHeads = count('attention.head_count');
  const numKvHeads = count('attention.head_count_kv', numHeads);
  const hiddenDim = count('feed_forward_length');
  const numLayers = count('block_count');
  const contextLength = count('context_length', 2048);
  checkCount(name, 'token_embd.weight (vocabulary)', 'vocabulary', vocabSize);
  const headDim = dim / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || numHeads % numKvHeads !== 0) {
    throw new ModelFormatError(
      `${name} has inconsistent attention sizes (embedding_length ${dim}, head_count ${numHeads}, head_count_kv ${numKvHeads}); the file is corrupt`,
      {
        argument: `${prefix}attention.head_count`,
        expected: 'embedding_length / head_count an even integer, head_count a multiple of head_count_kv',
        actual: [dim, numHeads, numKvHeads],
      },
    );
  }
  const positive = (field: string, fallback: number) => {
    const value = read(field, fallback);
    if (!Number.isFinite(value) || value <= 0) {
      throw new ModelFormatError(
        `${name} has ${prefix}${field} = ${value}; expected a positive finite number`,
        {
          argument: prefix + field,
          expected: '> 0, finite',
          actual: value,
        },
      );
    }
    return value;
  };
  const ropeDimensions = read('rope.dimension_count', headDim);
  if (ropeDimensions !== headDim) {
    throw new UnsupportedError(
      `${name} rotates ${ropeDimensions} of ${headDim} head dimensions; partial RoPE is not supported`,
      {
        argument: `${prefix}rope.dimension_count`,
        expected: headDim,
        actual: ropeDimensions,
      },
    );
  }
  return {
    dim,
    hiddenDim,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    contextLength,
    normEpsilon: positive('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: positive('rope.freq_base', 10000),
    ropeStyle: 'interleaved',
    tiedEmbeddings: tied,
  };
}

async function readTensor(
  source: ByteSource,
  dataOffset: number,
  info: GGUFTensorInfo,
  shape: readonly number[],
): Promise<Float32Array> {
  const actual = info.shape.map(Number);
  if (actual.length !== shape.length || actual.some((dimension, index) => dimension !== shape[index])) {
    throw new ModelFormatError(
      `${source.name}: tensor ${info.name} has shape [${actual.join(', ')}] but the config needs [${shape.join(', ')}]`,
      {
        argument: info.name,
        expected: shape,
        actual,
      },
    );
  }
  const elementBytes = ELEMENT_BYTES.get(info.dtype);
  if (elementBytes === undefined) {
    const typeName = GGMLQuantizationType[info.dtype] ?? `type ${info.dtype}`;
    throw new UnsupportedError(
      `${source.name}: tensor ${info.name} is ${typeName}; supported tensor types are F32, F16 and BF16 (convert or requantize the file)`,
      {
        argument: info.name,
        expected: ['F32', 'F16', 'BF16'],
        actual: typeName,
      },
    );
  }
  const count = actual.reduce((product, dimension) => product * dimension, 1);
  const start = dataOffset + Number(info.offset);
  if (!Number.isSafeInteger(start) || start < 0 || start + count * elementBytes > source.size) {
    throw new ModelFormatError(
      `${source.name}: tensor ${info.name} lies at bytes ${start}..${start + count * elementBytes}, outside the file (${source.size} bytes); the file is truncated or corrupt`,
      { argument: info.name, expected: `within ${source.size} bytes`, actual: start + count * elementBytes },
    );
  }
  const bytes = await source.read(start, count * elementBytes);
  if (info.dtype === GGMLQuantizationType.F32) return decodeF32(bytes, 0, count);
  if (info.dtype === GGMLQuantizationType.F16) return decodeF16(bytes, 0, count);
  return decodeBf16(bytes, 0, count);
}

async function parseFromSource(source: ByteSource): Promise<GgufModel> {
  const name = source.name;
  // Every count and length in the header is checked against the file before the parser sizes anything.
  await checkGgufHeader(source);
  let parsed: Awaited<ReturnType<typeof gguf>>;
  try {
    parsed = await gguf(`https://gguf.invalid/${encodeURIComponent(name)}`, { fetch: rangeFetch(source) });
  } catch (error) {
    if (DeftError.isInstance(error)) throw error;
    throw new ModelFormatError(`${name} is not a readable GGUF file: ${(error as Error).message}`, {
      argument: name,
      expected: 'GGUF',
      cause: error,
    });
  }
  const metadata = parsed.metadata as unknown as Readonly<Record<string, unknown>>;
  const tensors = new Map(parsed.tensorInfos.map((info) => [info.name, info]));
  const required = (tensorName: string): GGUFTensorInfo => {
    const info = tensors.get(tensorName);
    if (info === undefined) {
      throw new ModelFormatError(`${name} lacks the tensor ${tensorName}; is it a complete Llama GGUF?`, {
        argument: tensorName,
        expected: 'present',
        actual: 'missing',
      });
    }
    return info;
  };
  const embeddingInfo = required('token_embd.weight');
  const vocabSize = Number(embeddingInfo.shape[1] ?? 0);
  const outputInfo = tensors.get('output.weight');
  const config = configFromMetadata(metadata, name, vocabSize, outputInfo === undefined);
  const { dim, hiddenDim, numHeads, numKvHeads, headDim } = config;
  const dataOffset = Number(parsed.tensorDataOffset);
  // GGUF lists dimensions innermost first: a [out, in] row-major matrix has shape [in, out].
  const load = (tensorName: string, shape: readonly number[]) =>
    readTensor(source, dataOffset, required(tensorName), shape);
  const layers: LlamaLayerWeights[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const block = `blk.${layer}.`;
    layers.push({
      attentionNorm: await load(`${block}attn_norm.weight`, [dim]),
      query: await load(`${block}attn_q.weight`, [dim, numHeads * headDim]),
      key: await load(`${block}attn_k.weight`, [dim, numKvHeads * headDim]),
      value: await load(`${block}attn_v.weight`, [dim, numKvHeads * headDim]),
      attentionOutput: await load(`${block}attn_output.weight`, [numHeads * headDim, dim]),
      ffnNorm: await load(`${block}ffn_norm.weight`, [dim]),
      ffnGate: await load(`${block}ffn_gate.weight`, [dim, hiddenDim]),
      ffnDown: await load(`${block}ffn_down.weight`, [hiddenDim, dim]),
      ffnUp: await load(`${block}ffn_up.weight`, [dim, hiddenDim]),
    });
  }
  const weights = {
    tokenEmbedding: await load('token_embd.weight', [dim, vocabSize]),
    layers,
    finalNorm: await load('output_norm.weight', [dim]),
    ...(outputInfo === undefined ? {} : { output: await load('output.weight', [dim, vocabSize]) }),
  };
  return { config, weights, tokenizer: tokenizerFromGgufMetadata(metadata, name), metadata };
}

/**
 * Parses a GGUF model held in memory (browsers, tests). Architecture `llama`; F32, F16 and BF16
 * tensors are decoded to f32.
 *
 * @param bytes the whole file
 * @param name the file name, for messages
 * @throws ModelFormatError for a truncated or malformed file or missing tensors; UnsupportedError for
 *   another architecture, a quantized tensor type or partial RoPE.
 * @example
 * ```ts
 * const model = await parseGgufModel(new Uint8Array(await (await fetch(url)).arrayBuffer()), 'model.gguf');
 * ```
 */
export async function parseGgufModel(bytes: Uint8Array, name = 'model.gguf'): Promise<GgufModel> {
  return parseFromSource(bytesSource(bytes, name));
}

/**
 * Loads a GGUF model from a local file (Node only), reading only the header and the tensors it needs.
 * See {@link parseGgufModel}.
 *
 * @throws NotFoundError for a missing file; otherwise as `parseGgufModel`.
 * @example
 * ```ts
 * const { config, weights, tokenizer } = await loadGgufModel('stories260K.gguf');
 * ```
 */
export async function loadGgufModel(path: string): Promise<GgufModel> {
  const source = await openFileSource(path);
  try {
    return await parseFromSource(source);
  } finally {
    await source.close();
  }
}
