import type { DraftNode } from './draft-tree.js';

/** What speculative decoding asks of a draft. */
export interface DraftRequest {
  /**
   * Most draft tokens on any path that can still be verified (the room left in the target model's
   * context); deeper draft tokens are cut.
   */
  readonly maxDepth: number;
}

/**
 * Proposes draft token trees for speculative decoding. Asynchronous, so a drafter can run a model on a
 * GPU; {@link promptLookupDrafter} and {@link ModelDrafter} (a smaller model, or the target model's own
 * first layers) are the ones in this package. A drafter's tokens must come from the target model's
 * vocabulary: a drafter that knows its vocabulary says so in `vocabSize`, and speculative decoding checks it.
 */
export interface Drafter {
  /**
   * A draft tree continuing `context` (every token so far, the newest last); siblings most promising
   * first. An empty array proposes nothing (the pass then yields one token, as plain decoding does).
   */
  draft(context: readonly number[], request: DraftRequest): Promise<DraftNode[]>;
  /** Size of the vocabulary the drafter's tokens come from, when it knows it. */
  readonly vocabSize?: number;
  /**
   * Called when a run ends (also when it stops early): gives back what the drafter kept for the run (a
   * draft model's KV pages). The drafter stays usable.
   */
  reset?(): void;
}

/** True for a {@link Drafter} (an object with a `draft` method). */
export function isDrafter(value: unknown): value is Drafter {
  return (
    typeof value === 'object' && value !== null && typeof (value as { draft?: unknown }).draft === 'function'
  );
}
