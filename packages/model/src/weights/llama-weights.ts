import { InvalidArgumentError } from '@deft/core';
import type { LlamaConfig } from '../config/llama-config.js';
import { type HostWeight, isEncodedWeight } from './host-weight.js';

/**
 * Host weights of one transformer block, each matrix `[out, in]` row-major (PyTorch `Linear` layout).
 * Matrices are f32 or kept in their file's encoding ({@link HostWeight}); norms and biases are f32.
 */
export interface LlamaLayerWeights {
  /** `[dim]` RMSNorm weight before attention. */
  readonly attentionNorm: Float32Array;
  /** `[numHeads · headDim, dim]` */
  readonly query: HostWeight;
  /** `[numKvHeads · headDim, dim]` */
  readonly key: HostWeight;
  /** `[numKvHeads · headDim, dim]` */
  readonly value: HostWeight;
  /** `[dim, numHeads · headDim]` */
  readonly attentionOutput: HostWeight;
  /** `[dim]` RMSNorm weight before the feed-forward block. */
  readonly ffnNorm: Float32Array;
  /** `[hiddenDim, dim]` gate projection (`w1`). */
  readonly ffnGate: HostWeight;
  /** `[dim, hiddenDim]` down projection (`w2`). */
  readonly ffnDown: HostWeight;
  /** `[hiddenDim, dim]` up projection (`w3`). */
  readonly ffnUp: HostWeight;
  /** `[numHeads · headDim]` bias of `query`, present exactly when `config.attentionBias`. */
  readonly queryBias?: Float32Array;
  /** `[numKvHeads · headDim]` bias of `key`, present exactly when `config.attentionBias`. */
  readonly keyBias?: Float32Array;
  /** `[numKvHeads · headDim]` bias of `value`, present exactly when `config.attentionBias`. */
  readonly valueBias?: Float32Array;
  /** `[headDim]` RMSNorm weight of each query head, present exactly when `config.queryKeyNorm`. */
  readonly queryNorm?: Float32Array;
  /** `[headDim]` RMSNorm weight of each key head, present exactly when `config.queryKeyNorm`. */
  readonly keyNorm?: Float32Array;
}

/** Host weights of a whole Llama-family model (matrices f32 or in their file's encoding, norms f32). */
export interface LlamaWeights {
  /** `[vocabSize, dim]` */
  readonly tokenEmbedding: HostWeight;
  readonly layers: readonly LlamaLayerWeights[];
  /** `[dim]` final RMSNorm weight. */
  readonly finalNorm: Float32Array;
  /** `[vocabSize, dim]` output head; absent when the head is tied to `tokenEmbedding`. */
  readonly output?: HostWeight;
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
  const check = (name: string, array: HostWeight | undefined, size: number, encodedAllowed = true): void => {
    const valid =
      array instanceof Float32Array || (encodedAllowed && isEncodedWeight(array))
        ? array.length === size
        : false;
    if (!valid) {
      throw new InvalidArgumentError(
        `weight ${name} must be a Float32Array${encodedAllowed ? ' or an encoded weight' : ''} of ${size} values, got ${array?.length ?? 'none'}`,
        {
          argument: `weights.${name}`,
          expected: size,
          actual: array?.length,
        },
      );
    }
  };
  const optional = (name: string, array: Float32Array | undefined, size: number, present: boolean): void => {
    if (present) check(name, array, size, false);
    else if (array !== undefined) {
      throw new InvalidArgumentError(`weight ${name} is given but the config does not use it`, {
        argument: `weights.${name}`,
        expected: 'undefined',
        actual: array.length,
      });
    }
  };
  check('tokenEmbedding', weights.tokenEmbedding, vocabSize * dim);
  check('finalNorm', weights.finalNorm, dim, false);
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
    check(`${prefix}attentionNorm`, layer.attentionNorm, dim, false);
    check(`${prefix}query`, layer.query, numHeads * headDim * dim);
    check(`${prefix}key`, layer.key, numKvHeads * headDim * dim);
    check(`${prefix}value`, layer.value, numKvHeads * headDim * dim);
    check(`${prefix}attentionOutput`, layer.attentionOutput, dim * numHeads * headDim);
    check(`${prefix}ffnNorm`, layer.ffnNorm, dim, false);
    check(`${prefix}ffnGate`, layer.ffnGate, hiddenDim * dim);
    check(`${prefix}ffnDown`, layer.ffnDown, dim * hiddenDim);
    check(`${prefix}ffnUp`, layer.ffnUp, hiddenDim * dim);
    const bias = config.attentionBias === true;
    optional(`${prefix}queryBias`, layer.queryBias, numHeads * headDim, bias);
    optional(`${prefix}keyBias`, layer.keyBias, numKvHeads * headDim, bias);
    optional(`${prefix}valueBias`, layer.valueBias, numKvHeads * headDim, bias);
    const norms = config.queryKeyNorm === true;
    optional(`${prefix}queryNorm`, layer.queryNorm, headDim, norms);
    optional(`${prefix}keyNorm`, layer.keyNorm, headDim, norms);
  });
}
