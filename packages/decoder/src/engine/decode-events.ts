import type { StepStats } from '../runner/step-stats.js';

/** Names of the strategies, as they appear in events and results. */
export type StrategyName =
  | 'greedy'
  | 'sample'
  | 'best-of-n'
  | 'beam'
  | 'speculative'
  | 'tree-of-thoughts'
  | 'few-shot';

/** Tokens a sequence gained in a step. */
export interface SequenceTokens {
  /** Index of the sequence (branch, beam slot, or 0 for a single sequence). */
  readonly sequence: number;
  readonly tokens: readonly number[];
}

/**
 * Progress of a strategy, yielded after every forward pass: the pass's statistics (queries, tree size,
 * tokens, pages used and shared, KV bytes under the tree plan and the sequence baseline) and the tokens
 * chosen from its output.
 */
export interface StepEvent {
  readonly type: 'step';
  readonly strategy: StrategyName;
  /** 0 for the prefill, then 1, 2, … */
  readonly step: number;
  readonly stats: StepStats;
  /** Tokens chosen after this pass, per sequence (for streaming). */
  readonly tokens: readonly SequenceTokens[];
}

/** Every event a strategy yields. */
export type DecodeEvent = StepEvent;
