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

/**
 * What is wrong with `settings`, in words for the page, or `undefined` when a run can start: `width` and
 * `maxTokens` must be integers >= 1, `temperature` a finite number >= 0 and `seed` an integer.
 * @example
 * ```ts
 * runSettingsProblem({ ...DEFAULT_SETTINGS, width: -1 }); // 'width must be an integer >= 1, not -1'
 * ```
 */
export function runSettingsProblem(settings: RunSettings): string | undefined {
  const atLeastOne = (name: string, value: number) =>
    Number.isInteger(value) && value >= 1 ? undefined : `${name} must be an integer >= 1, not ${value}`;
  return (
    atLeastOne('width', settings.width) ??
    atLeastOne('maxTokens', settings.maxTokens) ??
    (Number.isFinite(settings.temperature) && settings.temperature >= 0
      ? undefined
      : `temperature must be a finite number >= 0, not ${settings.temperature}`) ??
    (Number.isInteger(settings.seed) ? undefined : `seed must be an integer, not ${settings.seed}`)
  );
}
