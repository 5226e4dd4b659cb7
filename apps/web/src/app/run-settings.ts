/** The strategies the page runs, as named in the URL and the strategy picker. */
export const STRATEGIES = ['greedy', 'beam', 'best-of', 'speculative', 'tot'] as const;
export type StrategyChoice = (typeof STRATEGIES)[number];

/** What one run decodes: the prompt and the strategy with its settings. */
export interface RunSettings {
  readonly prompt: string;
  readonly strategy: StrategyChoice;
  /** Beams (beam), samples (best-of), thoughts per expansion (tot). */
  readonly width: number;
  /** Sampling temperature (best-of, tot; greedy, beam and speculative decoding are exact). */
  readonly temperature: number;
  readonly seed: number;
  /** Most tokens per sequence (per thought for tot). */
  readonly maxTokens: number;
}

/** The settings a page starts with. */
export const DEFAULT_SETTINGS: RunSettings = {
  prompt: 'Once upon a time',
  strategy: 'beam',
  width: 4,
  temperature: 1,
  seed: 0,
  maxTokens: 32,
};
