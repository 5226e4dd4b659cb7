import {
  DEFAULT_SETTINGS,
  type RunSettings,
  runSettingsProblem,
  STRATEGIES,
  type StrategyChoice,
} from './run-settings.js';

/** What the page's URL asks for: a model to load, the run's settings, and whether to start at once. */
export interface UrlRequest {
  /** Absolute URLs (relative ones resolve against the page). */
  readonly modelUrl: string | undefined;
  readonly tokenizerUrl: string | undefined;
  readonly settings: RunSettings;
  /** `autorun=1`: load the model and run as soon as the page opens. */
  readonly autorun: boolean;
  /** What is wrong with the URL (a malformed model URL, a width that is not a positive integer…), if anything. */
  readonly problem: string | undefined;
}

function numberParam(params: URLSearchParams, name: string, fallback: number): number {
  const text = params.get(name);
  const value = text === null ? Number.NaN : Number(text);
  return Number.isFinite(value) ? value : fallback;
}

/**
 * Reads `?model=…&tokenizer=…&prompt=…&strategy=…&maxTokens=…&width=…&temperature=…&seed=…&autorun=1`.
 * Never throws: a parameter that is missing or not a number takes its default, and a model or tokenizer URL
 * that does not parse, or settings no run accepts ({@link runSettingsProblem}), are described in `problem`.
 * @example
 * ```ts
 * const request = readUrlRequest(new URL(location.href));
 * ```
 */
export function readUrlRequest(url: URL): UrlRequest {
  const params = url.searchParams;
  const problems: string[] = [];
  const absolute = (name: string) => {
    const value = params.get(name);
    if (value === null || value === '') return undefined;
    if (!URL.canParse(value, url)) {
      problems.push(`${name} is not a URL: ${JSON.stringify(value)}`);
      return undefined;
    }
    return new URL(value, url).href;
  };
  const strategy = params.get('strategy');
  const modelUrl = absolute('model');
  const tokenizerUrl = absolute('tokenizer');
  const settings: RunSettings = {
    prompt: params.get('prompt') ?? DEFAULT_SETTINGS.prompt,
    strategy: STRATEGIES.includes(strategy as StrategyChoice)
      ? (strategy as StrategyChoice)
      : DEFAULT_SETTINGS.strategy,
    width: numberParam(params, 'width', DEFAULT_SETTINGS.width),
    temperature: numberParam(params, 'temperature', DEFAULT_SETTINGS.temperature),
    seed: numberParam(params, 'seed', DEFAULT_SETTINGS.seed),
    maxTokens: numberParam(params, 'maxTokens', DEFAULT_SETTINGS.maxTokens),
  };
  const settingsProblem = runSettingsProblem(settings);
  if (settingsProblem !== undefined) problems.push(settingsProblem);
  return {
    modelUrl,
    tokenizerUrl,
    settings,
    autorun: params.get('autorun') === '1',
    problem: problems.length === 0 ? undefined : `bad page URL: ${problems.join('; ')}`,
  };
}
