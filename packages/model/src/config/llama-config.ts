import { InvalidArgumentError, type RopeStyle } from '@deft/core';

/**
 * Hyper-parameters of a Llama-family decoder: Llama 1/2/3/3.1/3.2, Mistral, TinyLlama and llama2.c models,
 * Qwen 2/2.5 (`attentionBias`) and Qwen 3 (`queryKeyNorm`).
 */
export interface LlamaConfig {
  /** Model width (embedding size). */
  readonly dim: number;
  /** Inner width of the SwiGLU feed-forward block. */
  readonly hiddenDim: number;
  readonly numLayers: number;
  /** Query heads. */
  readonly numHeads: number;
  /** KV heads (`numHeads % numKvHeads === 0`; fewer than `numHeads` is grouped-query attention). */
  readonly numKvHeads: number;
  /** Width of one head: `dim / numHeads` for most models; Qwen 3 sets it on its own. */
  readonly headDim: number;
  readonly vocabSize: number;
  /** Longest sequence the model was trained for (positions beyond it are allowed but degrade). */
  readonly contextLength: number;
  /** RMSNorm epsilon. */
  readonly normEpsilon: number;
  /** RoPE base frequency. */
  readonly ropeTheta: number;
  /** RoPE pairing of the checkpoint's Q/K layout (`interleaved` for llama2.c and GGUF `llama`). */
  readonly ropeStyle: RopeStyle;
  /** True when the output head reuses the token embedding (`output = embedding`). */
  readonly tiedEmbeddings: boolean;
  /**
   * `[headDim / 2]` divisor of each RoPE pair's frequency (GGUF `rope_freqs`, Llama 3.1 scaling, linear
   * scaling); none when omitted.
   */
  readonly ropeFrequencyFactors?: Float32Array;
  /** Q, K and V projections carry a bias (Qwen 2 / 2.5); false when omitted. */
  readonly attentionBias?: boolean;
  /** Per-head RMSNorm of Q and K before RoPE (Qwen 3); false when omitted. */
  readonly queryKeyNorm?: boolean;
}

function positiveInteger(config: LlamaConfig, field: keyof LlamaConfig): number {
  const value = config[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`config.${field} must be an integer >= 1, got ${String(value)}`, {
      argument: `config.${field}`,
      expected: 'integer >= 1',
      actual: value,
    });
  }
  return value;
}

/**
 * Checks a config's internal consistency (positive sizes, heads divisible by KV heads, even `headDim`,
 * RoPE frequency factors of the right length).
 *
 * @throws InvalidArgumentError naming the first inconsistent field.
 * @example
 * ```ts
 * validateLlamaConfig(checkpoint.config);
 * ```
 */
export function validateLlamaConfig(config: LlamaConfig): void {
  for (const field of [
    'dim',
    'hiddenDim',
    'numLayers',
    'numHeads',
    'numKvHeads',
    'headDim',
    'vocabSize',
    'contextLength',
  ] as const) {
    positiveInteger(config, field);
  }
  const fail = (field: string, expected: unknown, actual: unknown, message: string): never => {
    throw new InvalidArgumentError(message, { argument: `config.${field}`, expected, actual });
  };
  if (config.numHeads % config.numKvHeads !== 0) {
    fail(
      'numKvHeads',
      `a divisor of ${config.numHeads}`,
      config.numKvHeads,
      'config.numKvHeads must divide numHeads',
    );
  }
  if (config.headDim % 2 !== 0)
    fail('headDim', 'even', config.headDim, 'config.headDim must be even for RoPE');
  if (!(config.normEpsilon > 0 && Number.isFinite(config.normEpsilon))) {
    fail('normEpsilon', '> 0', config.normEpsilon, 'config.normEpsilon must be a finite number > 0');
  }
  if (!(config.ropeTheta > 0 && Number.isFinite(config.ropeTheta))) {
    fail('ropeTheta', '> 0', config.ropeTheta, 'config.ropeTheta must be a finite number > 0');
  }
  if (config.ropeStyle !== 'interleaved' && config.ropeStyle !== 'half') {
    fail(
      'ropeStyle',
      "'interleaved' | 'half'",
      config.ropeStyle,
      "config.ropeStyle must be 'interleaved' or 'half'",
    );
  }
  const factors = config.ropeFrequencyFactors;
  if (factors !== undefined) {
    if (!(factors instanceof Float32Array) || factors.length !== config.headDim / 2) {
      fail(
        'ropeFrequencyFactors',
        `Float32Array[${config.headDim / 2}]`,
        factors instanceof Float32Array ? factors.length : typeof factors,
        'config.ropeFrequencyFactors must hold headDim / 2 values',
      );
    }
    if (factors.some((factor) => !(factor > 0 && Number.isFinite(factor)))) {
      fail(
        'ropeFrequencyFactors',
        '> 0, finite',
        factors,
        'config.ropeFrequencyFactors must be finite and > 0',
      );
    }
  }
}
