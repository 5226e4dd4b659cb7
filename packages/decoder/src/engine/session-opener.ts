import type { DecodingSession } from './decoding-session.js';

/**
 * What a strategy needs of an engine: a way to open a session for a prompt. A `DecodingEngine` opens
 * sessions with a tree of their own; a `SharedTreeEngine` places every session in one shared tree, so
 * concurrent searches decode in the same forward passes.
 *
 * @example
 * ```ts
 * const run = (engine: SessionOpener) => runStrategy(generate(engine, { prompt, maxTokens: 20 }));
 * ```
 */
export interface SessionOpener {
  /**
   * @throws InvalidArgumentError for a bad prompt; CapacityError when it does not fit in the page pool.
   */
  openSession(prompt: ArrayLike<number>): DecodingSession;
}
