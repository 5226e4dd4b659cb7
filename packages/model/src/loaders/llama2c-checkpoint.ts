import { UnsupportedError } from '@deft/core';
import type { LlamaConfig } from '../config/llama-config.js';
import { ModelFormatError } from '../errors/model-format-error.js';
import type { LlamaCheckpoint, LlamaLayerWeights } from '../weights/llama-weights.js';
import { openFileSource, readFileBytes } from './byte-source.js';
import { decodeF32 } from './decode-floats.js';
import { checkHostMemory } from './host-memory.js';

const VERSION_MAGIC = 0x616b3432; // "ak42", llama2.c export versions >= 1
const GGUF_MAGIC = 0x46554747; // "GGUF" read little-endian
const LEGACY_HEADER_BYTES = 7 * 4;
const VERSIONED_HEADER_BYTES = 256;
/**
 * Upper bounds on header fields, far above any real model, checked before anything is sized from the
 * header: a hostile header must fail fast with a `ModelFormatError`, never allocate.
 */
const LIMITS = {
  dim: 1 << 16,
  hidden_dim: 1 << 20,
  n_layers: 1 << 12,
  n_heads: 1 << 12,
  n_kv_heads: 1 << 12,
  vocab_size: 1 << 22,
  seq_len: 1 << 22,
} as const;

interface Header {
  readonly config: LlamaConfig;
  readonly version: 0 | 1;
  readonly headerBytes: number;
}

function readHeader(bytes: Uint8Array, name: string): Header {
  if (bytes.byteLength < LEGACY_HEADER_BYTES) {
    throw new ModelFormatError(
      `${name} is truncated: ${bytes.byteLength} bytes cannot hold a llama2.c header (28 bytes)`,
      {
        argument: name,
        expected: `at least ${LEGACY_HEADER_BYTES} bytes`,
        actual: bytes.byteLength,
      },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic === GGUF_MAGIC) {
    throw new ModelFormatError(
      `${name} is a GGUF file, not a llama2.c checkpoint; load it with loadGgufModel`,
      {
        argument: name,
        expected: 'llama2.c checkpoint',
        actual: 'GGUF',
      },
    );
  }
  let version: 0 | 1 = 0;
  let base = 0;
  let shared: boolean;
  if (magic === VERSION_MAGIC) {
    const exportVersion = view.getInt32(4, true);
    if (exportVersion !== 1) {
      throw new UnsupportedError(
        `${name} is a llama2.c export of version ${exportVersion}; only the legacy format and version 1 (f32) are supported, re-export with --version 1`,
        { argument: name, expected: 'version 0 or 1', actual: exportVersion },
      );
    }
    if (bytes.byteLength < VERSIONED_HEADER_BYTES) {
      throw new ModelFormatError(`${name} is truncated inside its 256-byte header`, {
        argument: name,
        expected: `at least ${VERSIONED_HEADER_BYTES} bytes`,
        actual: bytes.byteLength,
      });
    }
    version = 1;
    base = 8;
  }
  const fields = Array.from({ length: 7 }, (_, index) => view.getInt32(base + index * 4, true));
  const [dim, hiddenDim, numLayers, numHeads, numKvHeads, rawVocabSize, contextLength] = fields as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (version === 1) {
    shared = view.getUint8(base + 28) !== 0;
  } else {
    shared = rawVocabSize > 0;
  }
  const vocabSize = Math.abs(rawVocabSize);
  const limits = Object.entries(LIMITS);
  for (let index = 0; index < limits.length; index++) {
    const [field, limit] = limits[index]!;
    const value = index === 5 ? vocabSize : fields[index]!;
    if (value > limit) {
      throw new ModelFormatError(
        `${name} has ${field} = ${value} in its llama2.c header, above the limit of ${limit}; the file is corrupt or not a llama2.c checkpoint`,
        { argument: `${name}: ${field}`, expected: `<= ${limit}`, actual: value },
      );
    }
  }
  const sane =
    dim > 0 &&
    hiddenDim > 0 &&
    numLayers > 0 &&
    numHeads > 0 &&
    numKvHeads > 0 &&
    vocabSize > 0 &&
    contextLength > 0;
  if (!sane || dim % numHeads !== 0 || numHeads % numKvHeads !== 0 || (dim / numHeads) % 2 !== 0) {
    throw new ModelFormatError(
      `${name} does not start with a valid llama2.c header (got ${fields.join(', ')}); is it a llama2.c checkpoint?`,
      {
        argument: name,
        expected: 'dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len with consistent sizes',
        actual: fields,
      },
    );
  }
  return {
    version,
    headerBytes: version === 1 ? VERSIONED_HEADER_BYTES : LEGACY_HEADER_BYTES,
    config: {
      dim,
      hiddenDim,
      numLayers,
      numHeads,
      numKvHeads,
      headDim: dim / numHeads,
      vocabSize,
      contextLength,
      normEpsilon: 1e-5,
      ropeTheta: 10000,
      ropeStyle: 'interleaved',
      tiedEmbeddings: shared,
    },
  };
}

/** One group of tensors in file order: one tensor, or one per layer (`perLayer`) of `size` floats each. */
interface TensorGroup {
  readonly name: string;
  readonly size: number;
  readonly perLayer: boolean;
}

/**
 * The tensor groups of the file in order. The list has a fixed length whatever `n_layers` says, so the
 * file size can be checked against it before anything sized by the header is allocated.
 */
function tensorGroups(header: Header): TensorGroup[] {
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize, contextLength, tiedEmbeddings } =
    header.config;
  const kvDim = numKvHeads * headDim;
  const queryDim = numHeads * headDim;
  const layer = (name: string, size: number): TensorGroup => ({ name, size, perLayer: true });
  const one = (name: string, size: number): TensorGroup => ({ name, size, perLayer: false });
  const projections = [
    layer('query', queryDim * dim),
    layer('key', kvDim * dim),
    layer('value', kvDim * dim),
    layer('attentionOutput', dim * queryDim),
  ];
  const feedForward = [
    layer('ffnGate', hiddenDim * dim),
    layer('ffnDown', dim * hiddenDim),
    layer('ffnUp', hiddenDim * dim),
  ];
  const output = tiedEmbeddings ? [] : [one('output', vocabSize * dim)];
  if (header.version === 1) {
    return [
      layer('attentionNorm', dim),
      layer('ffnNorm', dim),
      one('finalNorm', dim),
      one('tokenEmbedding', vocabSize * dim),
      ...projections,
      ...feedForward,
      ...output,
    ];
  }
  return [
    one('tokenEmbedding', vocabSize * dim),
    layer('attentionNorm', dim),
    ...projections,
    layer('ffnNorm', dim),
    ...feedForward,
    one('finalNorm', dim),
    one('ropeReal', (contextLength * headDim) / 2),
    one('ropeImaginary', (contextLength * headDim) / 2),
    ...output,
  ];
}

/**
 * Parses a llama2.c checkpoint held in memory: the legacy format (a header of 7 int32 `dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size, seq_len`, a negative `vocab_size` meaning an unshared
 * classifier, then f32 weights) or the version-1 export (`ak42` magic, 256-byte header, f32).
 *
 * @param bytes the whole file
 * @param name the file name, for messages
 * @throws ModelFormatError for a truncated or malformed file; UnsupportedError for a quantized export.
 * @example
 * ```ts
 * const { config, weights } = parseLlama2cCheckpoint(bytes, 'stories260K.bin');
 * ```
 */
export function parseLlama2cCheckpoint(bytes: Uint8Array, name = 'checkpoint'): LlamaCheckpoint {
  const header = readHeader(bytes, name);
  // Checked against the file size before anything sized by n_layers is allocated.
  const { numLayers } = header.config;
  const groups = tensorGroups(header);
  const floats = groups.reduce((sum, group) => sum + group.size * (group.perLayer ? numLayers : 1), 0);
  const expectedBytes = header.headerBytes + floats * 4;
  if (bytes.byteLength !== expectedBytes) {
    const problem = bytes.byteLength < expectedBytes ? 'is truncated' : 'has trailing bytes';
    throw new ModelFormatError(
      `${name} ${problem}: its header describes ${expectedBytes} bytes but the file has ${bytes.byteLength}; check the file or re-export it`,
      { argument: name, expected: expectedBytes, actual: bytes.byteLength },
    );
  }
  const tensors = new Map<string, Float32Array>();
  let offset = header.headerBytes;
  for (const group of groups) {
    for (let index = 0; index < (group.perLayer ? numLayers : 1); index++) {
      tensors.set(
        group.perLayer ? `${group.name}.${index}` : group.name,
        decodeF32(bytes, offset, group.size),
      );
      offset += group.size * 4;
    }
  }
  const take = (key: string): Float32Array => tensors.get(key)!;
  const layers: LlamaLayerWeights[] = Array.from({ length: numLayers }, (_, layer) => ({
    attentionNorm: take(`attentionNorm.${layer}`),
    query: take(`query.${layer}`),
    key: take(`key.${layer}`),
    value: take(`value.${layer}`),
    attentionOutput: take(`attentionOutput.${layer}`),
    ffnNorm: take(`ffnNorm.${layer}`),
    ffnGate: take(`ffnGate.${layer}`),
    ffnDown: take(`ffnDown.${layer}`),
    ffnUp: take(`ffnUp.${layer}`),
  }));
  const weights = {
    tokenEmbedding: take('tokenEmbedding'),
    layers,
    finalNorm: take('finalNorm'),
    ...(header.config.tiedEmbeddings ? {} : { output: take('output') }),
  };
  return { config: header.config, weights };
}

/** Options of {@link loadLlama2cCheckpoint}. */
export interface Llama2cLoadOptions {
  /**
   * Host memory the checkpoint may take, in bytes (default: no limit). The file is read whole, so a file
   * larger than this is refused with a `CapacityError` before it is read.
   */
  readonly hostMemoryBudgetBytes?: number;
}

/**
 * Loads a llama2.c checkpoint from a local file (Node only). See {@link parseLlama2cCheckpoint}.
 *
 * @throws NotFoundError for a missing file; CapacityError for a file above `hostMemoryBudgetBytes`;
 *   ModelFormatError / UnsupportedError as `parseLlama2cCheckpoint`.
 * @example
 * ```ts
 * const checkpoint = await loadLlama2cCheckpoint('models/stories260K.bin');
 * ```
 */
export async function loadLlama2cCheckpoint(
  path: string,
  options: Llama2cLoadOptions = {},
): Promise<LlamaCheckpoint> {
  if (options.hostMemoryBudgetBytes !== undefined) {
    const source = await openFileSource(path);
    const size = source.size;
    await source.close();
    checkHostMemory(path, size, options.hostMemoryBudgetBytes);
  }
  return parseLlama2cCheckpoint(await readFileBytes(path), path);
}
