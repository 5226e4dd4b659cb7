import { InvalidArgumentError } from '@deft/core';
import type { LlamaCheckpoint } from '@deft/model';

/**
 * The target model's own first `layers` blocks with its embedding, final norm and output head: a draft
 * model with no second checkpoint to find (self-speculative / early-exit drafting). Its weights are the
 * target's arrays (nothing is copied on the host; `LlamaModel.create` uploads the kept blocks once more).
 *
 * @throws InvalidArgumentError when `layers` is not in `[1, numLayers)`.
 * @example
 * ```ts
 * const draftModel = LlamaModel.create(backend, selfDraftCheckpoint(checkpoint, 2));
 * const drafter = new ModelDrafter(DecodingEngine.create(draftModel, { numPages: 128 }));
 * ```
 */
export function selfDraftCheckpoint(checkpoint: LlamaCheckpoint, layers: number): LlamaCheckpoint {
  const numLayers = checkpoint.config.numLayers;
  if (!(Number.isInteger(layers) && layers >= 1 && layers < numLayers)) {
    throw new InvalidArgumentError(
      `layers must be an integer in [1, ${numLayers}) (the target has ${numLayers} layers), got ${String(layers)}`,
      { argument: 'layers', expected: `[1, ${numLayers})`, actual: layers },
    );
  }
  return {
    config: { ...checkpoint.config, numLayers: layers },
    weights: { ...checkpoint.weights, layers: checkpoint.weights.layers.slice(0, layers) },
  };
}
