import type { DecodeEvent } from '../engine/decode-events.js';

/**
 * Drains a strategy: forwards every progress event to `onEvent` and resolves to the strategy's result.
 *
 * @example
 * ```ts
 * const result = await runStrategy(beamSearch(engine, { prompt, width: 4, maxTokens: 32 }), (event) => {
 *   console.log(event.step, event.stats.treeNodes, event.stats.pagesShared);
 * });
 * ```
 */
export async function runStrategy<Result>(
  strategy: AsyncGenerator<DecodeEvent, Result, undefined>,
  onEvent?: (event: DecodeEvent) => void,
): Promise<Result> {
  for (;;) {
    const next = await strategy.next();
    if (next.done === true) return next.value;
    onEvent?.(next.value);
  }
}
