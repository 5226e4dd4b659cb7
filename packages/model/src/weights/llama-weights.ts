import { InvalidArgumentError } from '@deft/core';
import type { LlamaConfig } from '../config/llama-config.js';

/** Host weights of one transformer block, f32, each matrix `[out, in]` row-major (PyTorch `Linear` layout). */
export interface LlamaLayerWeights {
  /** `[dim]` RMSNorm weight before attention. */
  readonly attentionNorm: Float32Array;
  /** `[numHeads · headDim, dim]` */
  readonly query: Float32Array;
  /** `[numKvHeads · headDim, dim]` */
  readonly key: Float32Array;
  /** `[numKvHeads · headDim, dim]` */
  readonly value: Float32Array;
  /** `[dim, numHeads · headDim]` */
  readonly attentionOutput: Float32Array;
  /** `[dim]` RMSNorm weight before the feed-forward block. */
  readonly ffnNorm: Float32Array;
  /** `[hiddenDim, dim]` gate projection (`w1`). */
  readonly ffnGate: Float32Array;
  /** `[dim, hiddenDim]` down projection (`w2`). */
  readonly ffnDown: Float32Array;
  /** `[hiddenDim, dim]` up projection (`w3`). */
  readonly ffnUp: Float32Array;
}

/** Host weights of a whole Llama-family model, f32. */
export interface LlamaWeights {
  /** `[vocabSize, dim]` */
  readonly tokenEmbedding: Float32Array;
  readonly layers: readonly LlamaLayerWeights[];
  /** `[dim]` final RMSNorm weight. */
  readonly finalNorm: Float32Array;
  /** `[vocabSize, dim]` output head; absent when the head is tied to `tokenEmbedding`. */
  readonly output?: Float32Array;
}

/** A model as loaded from a file: its config and host weights. */
export interface LlamaCheckpoint {
  readonly config: LlamaConfig;
  readonly weights: LlamaWeights;
}

/**
 * Checks every weight's length against the config.
 *
 * @throws InvalidArgumentError naming the first weight of the wrong size.
 * @example
 * ```ts
 * validateLlamaWeights(config, weights);
 * ```
 */
export function validateLlamaWeights(config: LlamaConfig, weights: LlamaWeights): void {
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize } = config;
  const check = (name: string, array: Float32Array | undefined, size: number): void => {
    if (!(array instanceof Float32Array) || array.length !== size) {
      throw new InvalidArgumentError(
        `weight ${name} must be a Float32Array of ${size} values, got ${array?.length ?? 'none'}`,
        {
          argument: `weights.${name}`,
          expected: size,
          actual: array?.length,
        },
      );
    }
  };
  check('tokenEmbedding', weights.tokenEmbedding, vocabSize * dim);
  check('finalNorm', weights.finalNorm, dim);
  if (config.tiedEmbeddings !== (weights.output === undefined)) {
    throw new InvalidArgumentError(
      'weights.output must be absent exactly when config.tiedEmbeddings is true',
      {
        argument: 'weights.output',
        expected: config.tiedEmbeddings ? 'undefined' : 'Float32Array',
        actual: weights.output === undefined ? 'undefined' : 'Float32Array',
      },
    );
  }
  if (weights.output !== undefined) check('output', weights.output, vocabSize * dim);
  if (weights.layers.length !== config.numLayers) {
    throw new InvalidArgumentError(
      `weights.layers must have ${config.numLayers} layers, got ${weights.layers.length}`,
      {
        argument: 'weights.layers',
        expected: config.numLayers,
        actual: weights.layers.length,
      },
    );
  }
  weights.layers.forEach((layer, index) => {
    const prefix = `layers[${index}].`;
    check(`${prefix}attentionNorm`, layer.attentionNorm, dim);
    check(`${prefix}query`, layer.query, numHeads * headDim * dim);
    check(`${prefix}key`, layer.key, numKvHeads * headDim * dim);
    check(`${prefix}value`, layer.value, numKvHeads * headDim * dim);
    check(`${prefix}attentionOutput`, layer.attentionOutput, dim * numHeads * headDim);
    check(`${prefix}ffnNorm`, layer.ffnNorm, dim);
    check(`${prefix}ffnGate`, layer.ffnGate, hiddenDim * dim);
    check(`${prefix}ffnDown`, layer.ffnDown, dim * hiddenDim);
    check(`${prefix}ffnUp`, layer.ffnUp, hiddenDim * dim);
  });
}
