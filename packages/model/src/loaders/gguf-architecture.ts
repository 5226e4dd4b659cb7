import { UnsupportedError } from '@deft/core';
import type { LlamaConfig } from '../config/llama-config.js';
import { ModelFormatError } from '../errors/model-format-error.js';

/** Architectures (`general.architecture`) this package runs: the Llama layout, Qwen 2 and Qwen 3. */
export const GGUF_ARCHITECTURES = ['llama', 'qwen2', 'qwen3'] as const;

/** A `general.architecture` value this package runs. */
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];

/** `rope.scaling.type` values the loader applies (`linear` as constant frequency factors). */
const ROPE_SCALING_TYPES = ['none', 'linear'];

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
  'attention.key_length': 1 << 12,
  context_length: 1 << 22,
  vocabulary: 1 << 22,
};

type Metadata = Readonly<Record<string, unknown>>;

/** Checks that a shape field is an integer in `1..LIMITS[field]`. */
function checkCount(name: string, key: string, field: string, value: number): number {
  const limit = LIMITS[field]!;
  if (!Number.isInteger(value) || value < 1 || value > limit) {
    throw new ModelFormatError(
      `${name} has ${key} = ${value}, not an integer in 1..${limit}; the file is corrupt or not a supported model`,
      { argument: key, expected: `integer in 1..${limit}`, actual: value },
    );
  }
  return value;
}

function metadataNumber(metadata: Metadata, key: string, name: string, fallback?: number): number {
  const value = metadata[key];
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value === undefined && fallback !== undefined) return fallback;
  throw new ModelFormatError(
    `${name} lacks the metadata key ${key} (a number); the file is incomplete or not a supported model`,
    {
      argument: key,
      expected: 'number',
      actual: value === undefined ? 'missing' : typeof value,
    },
  );
}

function unsupported(name: string, key: string, actual: unknown, expected: unknown, why: string): never {
  throw new UnsupportedError(`${name}: ${key} = ${JSON.stringify(actual)} is not supported; ${why}`, {
    argument: key,
    expected,
    actual,
  });
}

/** The architecture of a file's metadata. @throws UnsupportedError for any other. */
export function ggufArchitecture(metadata: Metadata, name: string): GgufArchitecture {
  const architecture = metadata['general.architecture'];
  if (!GGUF_ARCHITECTURES.includes(architecture as GgufArchitecture)) {
    unsupported(
      name,
      'general.architecture',
      architecture,
      GGUF_ARCHITECTURES,
      `supported: ${GGUF_ARCHITECTURES.join(', ')}`,
    );
  }
  return architecture as GgufArchitecture;
}

/** What the tensor list says about the model, read before the config is built. */
export interface GgufTensorFacts {
  readonly vocabSize: number;
  readonly tiedEmbeddings: boolean;
  readonly attentionBias: boolean;
}

/**
 * Every hyper-parameter of a supported architecture from its metadata (`<arch>.*` keys), checked against
 * sane limits, and every setting the forward pass does not implement refused.
 *
 * @throws UnsupportedError naming the key and its value (mixture of experts, partial RoPE, YaRN or other
 *   RoPE scaling, different key and value head widths); ModelFormatError for missing or corrupt values.
 */
export function ggufConfig(metadata: Metadata, name: string, facts: GgufTensorFacts): LlamaConfig {
  const architecture = ggufArchitecture(metadata, name);
  const prefix = `${architecture}.`;
  const read = (key: string, fallback?: number) => metadataNumber(metadata, prefix + key, name, fallback);
  const expertCount = read('expert_count', 0);
  if (expertCount > 0) {
    unsupported(name, `${prefix}expert_count`, expertCount, 0, 'only dense models are supported');
  }
  const count = (field: string, fallback?: number) =>
    checkCount(name, prefix + field, field, read(field, fallback));
  const dim = count('embedding_length');
  const numHeads = count('attention.head_count');
  const numKvHeads = count('attention.head_count_kv', numHeads);
  const hiddenDim = count('feed_forward_length');
  const numLayers = count('block_count');
  const contextLength = count('context_length', 2048);
  checkCount(name, 'token_embd.weight (vocabulary)', 'vocabulary', facts.vocabSize);
  const defaultHeadDim = dim / numHeads;
  const keyLength = metadata[`${prefix}attention.key_length`];
  const headDim =
    keyLength === undefined
      ? defaultHeadDim
      : checkCount(
          name,
          `${prefix}attention.key_length`,
          'attention.key_length',
          read('attention.key_length'),
        );
  const valueLength = read('attention.value_length', headDim);
  if (valueLength !== headDim) {
    unsupported(
      name,
      `${prefix}attention.value_length`,
      valueLength,
      headDim,
      'value heads must be as wide as key heads',
    );
  }
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || numHeads % numKvHeads !== 0) {
    throw new ModelFormatError(
      `${name} has inconsistent attention sizes (embedding_length ${dim}, head_count ${numHeads}, head_count_kv ${numKvHeads}, head width ${headDim}); the file is corrupt`,
      {
        argument: `${prefix}attention.head_count`,
        expected: 'an even head width, head_count a multiple of head_count_kv',
        actual: [dim, numHeads, numKvHeads, headDim],
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
    unsupported(
      name,
      `${prefix}rope.dimension_count`,
      ropeDimensions,
      headDim,
      `partial RoPE (rotating ${ropeDimensions} of ${headDim} head dimensions) is not implemented`,
    );
  }
  const scalingType = metadata[`${prefix}rope.scaling.type`] ?? 'none';
  if (!ROPE_SCALING_TYPES.includes(scalingType as string)) {
    unsupported(
      name,
      `${prefix}rope.scaling.type`,
      scalingType,
      ROPE_SCALING_TYPES,
      'RoPE scaling none and linear (and rope_freqs tensors) are implemented',
    );
  }
  // Linear scaling divides positions by the factor: the same as dividing every frequency by it.
  const legacyScale = read('rope.scale_linear', 1);
  const linearFactor = scalingType === 'linear' ? positive('rope.scaling.factor', 1) : legacyScale;
  if (!(linearFactor > 0 && Number.isFinite(linearFactor))) {
    throw new ModelFormatError(`${name} has a RoPE linear scale of ${linearFactor}; expected > 0`, {
      argument: `${prefix}rope.scaling.factor`,
      expected: '> 0, finite',
      actual: linearFactor,
    });
  }
  const factors = linearFactor === 1 ? undefined : new Float32Array(headDim / 2).fill(linearFactor);
  return {
    dim,
    hiddenDim,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: facts.vocabSize,
    contextLength,
    normEpsilon: positive('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: positive('rope.freq_base', 10000),
    // llama.cpp's converter permutes Llama Q/K for pairs (2i, 2i + 1); Qwen keeps Hugging Face's halves.
    ropeStyle: architecture === 'llama' ? 'interleaved' : 'half',
    tiedEmbeddings: facts.tiedEmbeddings,
    ...(factors === undefined ? {} : { ropeFrequencyFactors: factors }),
    ...(facts.attentionBias || architecture === 'qwen2' ? { attentionBias: true } : {}),
    ...(architecture === 'qwen3' ? { queryKeyNorm: true } : {}),
  };
}

/**
 * The config with a file's `rope_freqs` tensor applied: its per-pair divisors times any linear scaling
 * already in the config.
 */
export function withRopeFrequencies(config: LlamaConfig, ropeFrequencies: Float32Array): LlamaConfig {
  const factors = new Float32Array(config.headDim / 2);
  for (let pair = 0; pair < factors.length; pair++) {
    factors[pair] = (config.ropeFrequencyFactors?.[pair] ?? 1) * ropeFrequencies[pair]!;
  }
  return { ...config, ropeFrequencyFactors: factors };
}

/** One tensor the forward pass reads: its GGUF name and shape (innermost dimension first). */
export interface GgufTensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** `matrix`: kept in the file's encoding; `vector`: decoded to f32 (norms, biases, rope_freqs). */
  readonly role: 'matrix' | 'vector';
}

/** The tensors a config needs, in file-independent order (GGUF lists `[out, in]` matrices as `[in, out]`). */
export function ggufTensorSpecs(config: LlamaConfig): GgufTensorSpec[] {
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize } = config;
  const matrix = (name: string, rows: number, columns: number): GgufTensorSpec => ({
    name,
    shape: [columns, rows],
    role: 'matrix',
  });
  const vector = (name: string, size: number): GgufTensorSpec => ({ name, shape: [size], role: 'vector' });
  const specs: GgufTensorSpec[] = [matrix('token_embd.weight', vocabSize, dim)];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const block = `blk.${layer}.`;
    specs.push(
      vector(`${block}attn_norm.weight`, dim),
      matrix(`${block}attn_q.weight`, numHeads * headDim, dim),
      matrix(`${block}attn_k.weight`, numKvHeads * headDim, dim),
      matrix(`${block}attn_v.weight`, numKvHeads * headDim, dim),
      matrix(`${block}attn_output.weight`, dim, numHeads * headDim),
      vector(`${block}ffn_norm.weight`, dim),
      matrix(`${block}ffn_gate.weight`, hiddenDim, dim),
      matrix(`${block}ffn_down.weight`, dim, hiddenDim),
      matrix(`${block}ffn_up.weight`, hiddenDim, dim),
    );
    if (config.attentionBias === true) {
      specs.push(
        vector(`${block}attn_q.bias`, numHeads * headDim),
        vector(`${block}attn_k.bias`, numKvHeads * headDim),
        vector(`${block}attn_v.bias`, numKvHeads * headDim),
      );
    }
    if (config.queryKeyNorm === true) {
      specs.push(
        vector(`${block}attn_q_norm.weight`, headDim),
        vector(`${block}attn_k_norm.weight`, headDim),
      );
    }
  }
  specs.push(vector('output_norm.weight', dim));
  if (!config.tiedEmbeddings) specs.push(matrix('output.weight', vocabSize, dim));
  return specs;
}
