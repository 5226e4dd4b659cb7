import {
  blockQuantizationLayout,
  DeftError,
  isBlockQuantization,
  quantizedByteLength,
  UnsupportedError,
} from '@deft/core';
import { GGMLQuantizationType, type GGUFTensorInfo, gguf } from '@huggingface/gguf';
import { ModelFormatError } from '../errors/model-format-error.js';
import { tokenizerFromGgufMetadata } from '../tokenizer/gguf-tokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { HostWeight, WeightEncoding } from '../weights/host-weight.js';
import type { LlamaCheckpoint, LlamaLayerWeights } from '../weights/llama-weights.js';
import { type ByteSource, bytesSource, openFileSource } from './byte-source.js';
import { decodeBf16, decodeF16, decodeF32 } from './decode-floats.js';
import {
  type GgufTensorSpec,
  ggufArchitecture,
  ggufConfig,
  ggufTensorSpecs,
  withRopeFrequencies,
} from './gguf-architecture.js';
import { checkGgufHeader } from './gguf-header-check.js';
import { checkHostMemory } from './host-memory.js';

/** GGML tensor types the loader reads, with their host encoding (`f32` is decoded to a `Float32Array`). */
const TENSOR_TYPES = new Map<number, 'f32' | WeightEncoding>([
  [GGMLQuantizationType.F32, 'f32'],
  [GGMLQuantizationType.F16, 'f16'],
  [GGMLQuantizationType.BF16, 'bf16'],
  [GGMLQuantizationType.Q8_0, 'q8_0'],
  [GGMLQuantizationType.Q4_0, 'q4_0'],
  [GGMLQuantizationType.Q4_1, 'q4_1'],
  [GGMLQuantizationType.Q5_0, 'q5_0'],
  [GGMLQuantizationType.Q5_1, 'q5_1'],
  [GGMLQuantizationType.Q4_K, 'q4_k'],
  [GGMLQuantizationType.Q5_K, 'q5_k'],
  [GGMLQuantizationType.Q6_K, 'q6_k'],
]);
const SUPPORTED_TYPE_NAMES = [
  'F32',
  'F16',
  'BF16',
  'Q8_0',
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q4_K',
  'Q5_K',
  'Q6_K',
];

/** A GGUF model: config, host weights (matrices in the file's encoding), the tokenizer and the raw metadata. */
export interface GgufModel extends LlamaCheckpoint {
  /** The tokenizer of the file (SentencePiece or byte-level BPE), `undefined` when it carries no vocabulary. */
  readonly tokenizer: Tokenizer | undefined;
  /** Every metadata key-value pair of the file (arrays included). */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Progress of loading a model: reported after the header and after each tensor read (or uploaded). */
export interface LoadProgress {
  /** Tensor bytes done so far. */
  readonly bytes: number;
  /** Tensor bytes in all. */
  readonly totalBytes: number;
  /** Tensors done so far. */
  readonly tensors: number;
  /** Tensors in all. */
  readonly totalTensors: number;
}

/** Options of {@link loadGgufModel} and {@link parseGgufModel}. */
export interface GgufLoadOptions {
  /** Called after the header is checked (0 tensors) and after each tensor is read. */
  readonly onProgress?: (progress: LoadProgress) => void;
  /**
   * Host memory the weights may take, in bytes (default: no limit). A model whose tensors need more is
   * refused with a `CapacityError` before any tensor is read.
   */
  readonly hostMemoryBudgetBytes?: number;
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

/** Where a tensor's bytes are and how they are encoded, checked against the file before anything is read. */
interface TensorLocation {
  readonly spec: GgufTensorSpec;
  readonly encoding: 'f32' | WeightEncoding;
  readonly start: number;
  readonly byteLength: number;
  readonly count: number;
}

function tensorByteLength(encoding: 'f32' | WeightEncoding, count: number): number {
  if (encoding === 'f32') return count * 4;
  if (encoding === 'f16' || encoding === 'bf16') return count * 2;
  return quantizedByteLength(encoding, count);
}

/** Checks a tensor's presence, shape, type and byte range; reads nothing. */
function locateTensor(
  source: ByteSource,
  dataOffset: number,
  info: GGUFTensorInfo | undefined,
  spec: GgufTensorSpec,
): TensorLocation {
  if (info === undefined) {
    throw new ModelFormatError(`${source.name} lacks the tensor ${spec.name}; is it a complete model file?`, {
      argument: spec.name,
      expected: 'present',
      actual: 'missing',
    });
  }
  const actual = info.shape.map(Number);
  const shape = spec.shape;
  if (actual.length !== shape.length || actual.some((dimension, index) => dimension !== shape[index])) {
    throw new ModelFormatError(
      `${source.name}: tensor ${info.name} has shape [${actual.join(', ')}] but the config needs [${shape.join(', ')}]`,
      { argument: info.name, expected: shape, actual },
    );
  }
  const encoding = TENSOR_TYPES.get(info.dtype);
  const typeName = GGMLQuantizationType[info.dtype] ?? `type ${info.dtype}`;
  if (encoding === undefined) {
    throw new UnsupportedError(
      `${source.name}: tensor ${info.name} is ${typeName}; supported tensor types are ${SUPPORTED_TYPE_NAMES.join(', ')} (requantize the file, e.g. to Q4_K_M)`,
      { argument: info.name, expected: SUPPORTED_TYPE_NAMES, actual: typeName },
    );
  }
  const count = actual.reduce((product, dimension) => product * dimension, 1);
  if (isBlockQuantization(encoding) && actual[0]! % blockQuantizationLayout(encoding).values !== 0) {
    throw new ModelFormatError(
      `${source.name}: tensor ${info.name} is ${typeName} but its rows of ${actual[0]} values are not whole blocks of ${blockQuantizationLayout(encoding).values}`,
      {
        argument: info.name,
        expected: `a multiple of ${blockQuantizationLayout(encoding).values}`,
        actual: actual[0],
      },
    );
  }
  if (spec.role === 'vector' && encoding !== 'f32' && encoding !== 'f16' && encoding !== 'bf16') {
    throw new UnsupportedError(
      `${source.name}: tensor ${info.name} is ${typeName}; norm weights, biases and rope_freqs must be F32, F16 or BF16`,
      { argument: info.name, expected: ['F32', 'F16', 'BF16'], actual: typeName },
    );
  }
  const byteLength = tensorByteLength(encoding, count);
  const start = dataOffset + Number(info.offset);
  if (!Number.isSafeInteger(start) || start < 0 || start + byteLength > source.size) {
    throw new ModelFormatError(
      `${source.name}: tensor ${info.name} lies at bytes ${start}..${start + byteLength}, outside the file (${source.size} bytes); the file is truncated or corrupt`,
      { argument: info.name, expected: `within ${source.size} bytes`, actual: start + byteLength },
    );
  }
  return { spec, encoding, start, byteLength, count };
}

/** Reads one located tensor: vectors (and f32 matrices) as f32, other matrices in the file's encoding. */
async function readTensor(source: ByteSource, location: TensorLocation): Promise<HostWeight> {
  const bytes = await source.read(location.start, location.byteLength);
  const { encoding, count } = location;
  if (encoding === 'f32') return decodeF32(bytes, 0, count);
  if (location.spec.role === 'vector')
    return encoding === 'f16' ? decodeF16(bytes, 0, count) : decodeBf16(bytes, 0, count);
  // From a file each read is a fresh buffer; from a caller's buffer it is a view into it (no copy).
  return { encoding, bytes, length: count };
}

async function parseFromSource(source: ByteSource, options: GgufLoadOptions): Promise<GgufModel> {
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
  // Everything is decided from the header before a tensor byte is read: the architecture and its
  // settings, the tokenizer, and every tensor's presence, shape, type and place in the file.
  ggufArchitecture(metadata, name);
  const tensors = new Map(parsed.tensorInfos.map((info) => [info.name, info]));
  const embeddingInfo = tensors.get('token_embd.weight');
  if (embeddingInfo === undefined) {
    throw new ModelFormatError(`${name} lacks the tensor token_embd.weight; is it a complete model file?`, {
      argument: 'token_embd.weight',
      expected: 'present',
      actual: 'missing',
    });
  }
  let config = ggufConfig(metadata, name, {
    vocabSize: Number(embeddingInfo.shape[1] ?? 0),
    tiedEmbeddings: !tensors.has('output.weight'),
    attentionBias: tensors.has('blk.0.attn_q.bias'),
  });
  const tokenizer = tokenizerFromGgufMetadata(metadata, name);
  const dataOffset = Number(parsed.tensorDataOffset);
  const specs = ggufTensorSpecs(config);
  const ropeSpec: GgufTensorSpec = { name: 'rope_freqs.weight', shape: [config.headDim / 2], role: 'vector' };
  if (tensors.has(ropeSpec.name)) specs.push(ropeSpec);
  const wanted = new Set(specs.map((spec) => spec.name));
  for (const info of parsed.tensorInfos) {
    if (!wanted.has(info.name)) {
      throw new UnsupportedError(
        `${name} has the tensor ${info.name}, which the ${String(metadata['general.architecture'])} forward pass does not use; the model is a variant this package does not implement`,
        { argument: info.name, expected: [...wanted].slice(0, 12), actual: info.name },
      );
    }
  }
  const locations = specs.map((spec) => locateTensor(source, dataOffset, tensors.get(spec.name), spec));
  const totalBytes = locations.reduce((sum, location) => sum + location.byteLength, 0);
  checkHostMemory(name, totalBytes, options.hostMemoryBudgetBytes);
  let bytes = 0;
  let done = 0;
  const report = () =>
    options.onProgress?.({ bytes, totalBytes, tensors: done, totalTensors: locations.length });
  report();
  const weights = new Map<string, HostWeight>();
  for (const location of locations) {
    weights.set(location.spec.name, await readTensor(source, location));
    bytes += location.byteLength;
    done++;
    report();
  }
  const ropeFrequencies = weights.get(ropeSpec.name);
  if (ropeFrequencies instanceof Float32Array) config = withRopeFrequencies(config, ropeFrequencies);
  const take = (tensorName: string): HostWeight => weights.get(tensorName)!;
  const vector = (tensorName: string): Float32Array => take(tensorName) as Float32Array;
  const optionalVector = (tensorName: string) => (weights.has(tensorName) ? vector(tensorName) : undefined);
  const layers: LlamaLayerWeights[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const block = `blk.${layer}.`;
    const queryBias = optionalVector(`${block}attn_q.bias`);
    const keyBias = optionalVector(`${block}attn_k.bias`);
    const valueBias = optionalVector(`${block}attn_v.bias`);
    const queryNorm = optionalVector(`${block}attn_q_norm.weight`);
    const keyNorm = optionalVector(`${block}attn_k_norm.weight`);
    layers.push({
      attentionNorm: vector(`${block}attn_norm.weight`),
      query: take(`${block}attn_q.weight`),
      key: take(`${block}attn_k.weight`),
      value: take(`${block}attn_v.weight`),
      attentionOutput: take(`${block}attn_output.weight`),
      ffnNorm: vector(`${block}ffn_norm.weight`),
      ffnGate: take(`${block}ffn_gate.weight`),
      ffnDown: take(`${block}ffn_down.weight`),
      ffnUp: take(`${block}ffn_up.weight`),
      ...(queryBias === undefined ? {} : { queryBias }),
      ...(keyBias === undefined ? {} : { keyBias }),
      ...(valueBias === undefined ? {} : { valueBias }),
      ...(queryNorm === undefined ? {} : { queryNorm }),
      ...(keyNorm === undefined ? {} : { keyNorm }),
    });
  }
  const weightsOut = {
    tokenEmbedding: take('token_embd.weight'),
    layers,
    finalNorm: vector('output_norm.weight'),
    ...(config.tiedEmbeddings ? {} : { output: take('output.weight') }),
  };
  return { config, weights: weightsOut, tokenizer, metadata };
}

/**
 * Parses a GGUF model held in memory (browsers, tests). Architectures `llama` (Llama 2/3/3.1/3.2,
 * Mistral), `qwen2` and `qwen3`; every hyper-parameter comes from the metadata. Tensors F32, F16, BF16,
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K: matrices stay in the file's encoding (views into `bytes`), norms and
 * biases are decoded to f32. Everything is checked from the header before a tensor is read.
 *
 * @param bytes the whole file
 * @param name the file name, for messages
 * @throws ModelFormatError for a truncated or malformed file or missing tensors; UnsupportedError naming
 *   the key and value (or tensor and type) of anything else: another architecture or tokenizer, mixture
 *   of experts, partial RoPE, YaRN scaling, another tensor type, a tensor the forward pass does not use.
 * @example
 * ```ts
 * const model = await parseGgufModel(new Uint8Array(await (await fetch(url)).arrayBuffer()), 'model.gguf');
 * ```
 */
export async function parseGgufModel(
  bytes: Uint8Array,
  name = 'model.gguf',
  options: GgufLoadOptions = {},
): Promise<GgufModel> {
  return parseFromSource(bytesSource(bytes, name), options);
}

/**
 * Loads a GGUF model from a local file (Node only), reading the header, then the tensors it needs one at
 * a time; host memory stays about the file's size (matrices are kept in the file's encoding).
 * See {@link parseGgufModel}.
 *
 * @throws NotFoundError for a missing file; otherwise as `parseGgufModel`.
 * @example
 * ```ts
 * const { config, weights, tokenizer } = await loadGgufModel('stories260K.gguf');
 * ```
 */
export async function loadGgufModel(path: string, options: GgufLoadOptions = {}): Promise<GgufModel> {
  const source = await openFileSource(path);
  try {
    return await parseFromSource(source, options);
  } finally {
    await source.close();
  }
}
