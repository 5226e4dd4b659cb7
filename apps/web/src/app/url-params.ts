import { DEFAULT_SETTINGS, type RunSettings, STRATEGIES, type StrategyChoice } from './run-settings.js';

/** What the page's URL asks for: a model to load, the run's settings, and whether to start at once. */
export interface UrlRequest {
  /** Absolute URLs (relative ones resolve against the page). */
  readonly modelUrl: string | undefined;
  readonly tokenizerUrl: string | undefined;
  readonly settings: RunSettings;
  /** `autorun=1`: load the model and run as soon as the page opens. */
  readonly autorun: boolean;
}

function numberParam(params: URLSearchParams, name: string, fallback: number): number {
  const text = params.get(name);
  const value = text === null ? Number.NaN : Number(text);
  return Number.isFinite(value) ? value : fallback;
}

/**
 * Reads `?model=…&tokenizer=…&prompt=…&strategy=…&maxTokens=…&width=…&temperature=…&seed=…&autorun=1`.
 * @example
 * ```ts
 * const request = readUrlRequest(new URL(location.href));
 * ```
 */
export function readUrlRequest(url: URL): UrlRequest {
  const params = url.searchParams;
  const absolute = (name: string) => {
    const value = params.get(name);
    return value === null || value === '' ? undefined : new URL(value, url).href;
  };
  const strategy = params.get('strategy');
  return {
    modelUrl: absolute('model'),
    tokenizerUrl: absolute('tokenizer'),
    settings: {
      prompt: params.get('prompt') ?? DEFAULT_SETTINGS.prompt,
      strategy: STRATEGIES.includes(strategy as StrategyChoice)
        ? (strategy as StrategyChoice)
        : DEFAULT_SETTINGS.strategy,
      width: numberParam(params, 'width', DEFAULT_SETTINGS.width),
      temperature: numberParam(params, 'temperature', DEFAULT_SETTINGS.temperature),
      seed: numberParam(params, 'seed', DEFAULT_SETTINGS.seed),
      maxTokens: numberParam(params, 'maxTokens', DEFAULT_SETTINGS.maxTokens),
    },
    autorun: params.get('autorun') === '1',
  };
}
