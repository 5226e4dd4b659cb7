import type { StepStats } from '../runner/step-stats.js';

/**
 * Totals of a strategy's forward passes. KV byte counts cover every layer, K and V together; the
 * `sequence` figures are what sequence-based attention (each query reading its whole path) would read
 * for the same queries.
 */
export interface DecodeStats {
  /** Forward passes (one per step, whatever the number of queries). */
  readonly forwardPasses: number;
  /** Queries (tokens run through the model), prefill included. */
  readonly queries: number;
  /** KV bytes the tree plans read. */
  readonly kvBytesRead: number;
  /** KV bytes sequence-based attention would read. */
  readonly sequenceKvBytes: number;
  /** `sequenceKvBytes / kvBytesRead` (1 when nothing was read). */
  readonly kvReadReduction: number;
  /** Most pages in use after any step. */
  readonly peakPagesUsed: number;
  /** Largest tree (live nodes) after any step. */
  readonly peakTreeNodes: number;
  readonly planMilliseconds: number;
  readonly forwardMilliseconds: number;
  /** Every step's own numbers, in order. */
  readonly steps: readonly StepStats[];
}

/**
 * Sums step statistics.
 * @example
 * ```ts
 * const totals = summarizeSteps(session.steps);
 * ```
 */
export function summarizeSteps(steps: readonly StepStats[]): DecodeStats {
  let queries = 0;
  let kvBytesRead = 0;
  let sequenceKvBytes = 0;
  let peakPagesUsed = 0;
  let peakTreeNodes = 0;
  let planMilliseconds = 0;
  let forwardMilliseconds = 0;
  for (const step of steps) {
    queries += step.queries;
    kvBytesRead += step.kvBytesRead;
    sequenceKvBytes += step.sequenceKvBytes;
    peakPagesUsed = Math.max(peakPagesUsed, step.pagesUsed);
    peakTreeNodes = Math.max(peakTreeNodes, step.treeNodes);
    planMilliseconds += step.planMilliseconds;
    forwardMilliseconds += step.forwardMilliseconds;
  }
  return {
    forwardPasses: steps.length,
    queries,
    kvBytesRead,
    sequenceKvBytes,
    kvReadReduction: kvBytesRead === 0 ? 1 : sequenceKvBytes / kvBytesRead,
    peakPagesUsed,
    peakTreeNodes,
    planMilliseconds,
    forwardMilliseconds,
    steps: [...steps],
  };
}
