import { invalidField } from '../errors/api-error.js';
import type { ChatMessage } from './chat-format.js';

/** Most choices (`n`, `best_of`) and stop strings one request may ask for. */
export const REQUEST_LIMITS = { choices: 64, stopStrings: 4, topLogprobs: 20, beamWidth: 64 } as const;

/** How the sequences of a request are decoded. */
export type DecodeMode =
  | { readonly kind: 'sample' }
  | { readonly kind: 'beam'; readonly width: number; readonly lengthPenalty: number }
  | { readonly kind: 'speculative'; readonly draftLength: number; readonly draftBranches: number };

/** A checked request of `POST /v1/completions` or `POST /v1/chat/completions`. */
export interface CompletionRequest {
  readonly endpoint: 'completions' | 'chat';
  /** `completions`: the prompt as text or token ids. */
  readonly prompt: { readonly text: string } | { readonly tokens: readonly number[] } | undefined;
  /** `chat`: the conversation. */
  readonly messages: readonly ChatMessage[] | undefined;
  /** `max_tokens` (`max_completion_tokens` in chat); `undefined`: the endpoint's default. */
  readonly maxTokens: number | undefined;
  readonly temperature: number;
  readonly topP: number;
  /** 0: every token. */
  readonly topK: number;
  /** `undefined`: a fresh seed per request. */
  readonly seed: number | undefined;
  /** Choices returned. */
  readonly n: number;
  /** Sequences decoded (>= n); the `n` with the highest mean log-probability are returned. */
  readonly bestOf: number;
  /** Log-probabilities of the chosen tokens requested. */
  readonly logprobs: boolean;
  /** Most likely alternatives per token, 0 when none. */
  readonly topLogprobs: number;
  readonly stop: readonly string[];
  /** Keep going past the end-of-sequence token (extension, for load tests). */
  readonly ignoreEos: boolean;
  readonly stream: boolean;
  /** Send a last chunk with the usage counts (default true). */
  readonly includeUsage: boolean;
  readonly mode: DecodeMode;
}

type Body = Record<string, unknown>;

const has = (body: Body, name: string) => body[name] !== undefined && body[name] !== null;

function integerField(body: Body, name: string, minimum: number, maximum: number): number | undefined {
  if (!has(body, name)) return undefined;
  const value = body[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum) {
    throw invalidField(
      name,
      `${name} must be an integer from ${minimum} to ${maximum}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function numberField(
  body: Body,
  name: string,
  check: (value: number) => boolean,
  expected: string,
): number | undefined {
  if (!has(body, name)) return undefined;
  const value = body[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) {
    throw invalidField(name, `${name} must be ${expected}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function booleanField(body: Body, name: string): boolean | undefined {
  if (!has(body, name)) return undefined;
  const value = body[name];
  if (typeof value !== 'boolean') {
    throw invalidField(name, `${name} must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Fields of the OpenAI API this server does not implement: refused unless they hold their neutral value. */
function refuseUnsupported(body: Body): void {
  const neutral: Record<string, (value: unknown) => boolean> = {
    presence_penalty: (value) => value === 0,
    frequency_penalty: (value) => value === 0,
    logit_bias: (value) => typeof value === 'object' && Object.keys(value as object).length === 0,
    echo: (value) => value === false,
    suffix: () => false,
    tools: (value) => Array.isArray(value) && value.length === 0,
    functions: (value) => Array.isArray(value) && value.length === 0,
    tool_choice: (value) => value === 'none',
    response_format: (value) => (value as { type?: unknown }).type === 'text',
  };
  for (const [name, isNeutral] of Object.entries(neutral)) {
    if (has(body, name) && !isNeutral(body[name])) {
      throw invalidField(
        name,
        `${name} is not supported by deft serve; leave it out`,
        'unsupported_parameter',
      );
    }
  }
}

function parseStop(body: Body): string[] {
  if (!has(body, 'stop')) return [];
  const value = body.stop;
  const list = typeof value === 'string' ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length > REQUEST_LIMITS.stopStrings ||
    list.some((item) => typeof item !== 'string' || item === '')
  ) {
    throw invalidField(
      'stop',
      `stop must be a non-empty string or an array of at most ${REQUEST_LIMITS.stopStrings} non-empty strings`,
    );
  }
  return list as string[];
}

function parsePrompt(body: Body): CompletionRequest['prompt'] {
  if (!has(body, 'prompt'))
    throw invalidField('prompt', 'prompt is required: a string or an array of token ids');
  const value = body.prompt;
  if (typeof value === 'string') return { text: value };
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return { text: value[0] };
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((item) => typeof item === 'number' && Number.isInteger(item) && item >= 0)
  ) {
    return { tokens: value as number[] };
  }
  throw invalidField(
    'prompt',
    'prompt must be a string or a non-empty array of token ids (one prompt per request; send several requests for several prompts)',
  );
}

function parseMessages(body: Body): ChatMessage[] {
  const value = body.messages;
  if (!Array.isArray(value) || value.length === 0) {
    throw invalidField('messages', 'messages must be a non-empty array of { role, content }');
  }
  return value.map((message, index): ChatMessage => {
    const where = `messages[${index}]`;
    if (typeof message !== 'object' || message === null) {
      throw invalidField(where, `${where} must be an object with role and content`);
    }
    const { role, content } = message as { role?: unknown; content?: unknown };
    if (role !== 'system' && role !== 'developer' && role !== 'user' && role !== 'assistant') {
      throw invalidField(
        `${where}.role`,
        `${where}.role must be system, developer, user or assistant, got ${JSON.stringify(role)}`,
      );
    }
    let text: string;
    if (typeof content === 'string') text = content;
    else if (
      Array.isArray(content) &&
      content.every(
        (part) =>
          typeof part === 'object' &&
          part !== null &&
          (part as { type?: unknown }).type === 'text' &&
          typeof (part as { text?: unknown }).text === 'string',
      )
    ) {
      text = content.map((part) => (part as { text: string }).text).join('');
    } else {
      throw invalidField(
        `${where}.content`,
        `${where}.content must be a string or an array of { type: "text", text } parts`,
      );
    }
    return { role: role === 'developer' ? 'system' : role, content: text };
  });
}

function parseMode(body: Body, sampled: { temperature: boolean }): DecodeMode {
  const beamWidth = integerField(body, 'beam_width', 1, REQUEST_LIMITS.beamWidth);
  const lengthPenalty = numberField(body, 'length_penalty', () => true, 'a finite number');
  const speculative = booleanField(body, 'speculative') ?? false;
  const draftLength = integerField(body, 'draft_length', 1, 64);
  const draftBranches = integerField(body, 'draft_branches', 1, 64);
  if (lengthPenalty !== undefined && beamWidth === undefined) {
    throw invalidField('length_penalty', 'length_penalty applies to beam search: give beam_width too');
  }
  if (!speculative && (draftLength !== undefined || draftBranches !== undefined)) {
    throw invalidField(
      draftLength !== undefined ? 'draft_length' : 'draft_branches',
      'draft_length and draft_branches apply to speculative decoding: set speculative to true',
    );
  }
  if (beamWidth !== undefined && speculative) {
    throw invalidField('speculative', 'choose beam search (beam_width) or speculative decoding, not both');
  }
  if ((beamWidth !== undefined || speculative) && sampled.temperature) {
    const what = beamWidth !== undefined ? 'beam search' : 'speculative decoding';
    throw invalidField('temperature', `${what} is deterministic: set temperature to 0 (or leave it out)`);
  }
  for (const name of ['top_p', 'top_k'] as const) {
    if ((beamWidth !== undefined || speculative) && has(body, name)) {
      throw invalidField(name, `${name} applies to sampling, not to beam search or speculative decoding`);
    }
  }
  if (beamWidth !== undefined) return { kind: 'beam', width: beamWidth, lengthPenalty: lengthPenalty ?? 1 };
  if (speculative)
    return { kind: 'speculative', draftLength: draftLength ?? 6, draftBranches: draftBranches ?? 4 };
  return { kind: 'sample' };
}

/**
 * Checks a decoded JSON body of either endpoint and fills in the defaults (temperature 1, top_p 1, n 1,
 * as OpenAI's). Beam search (`beam_width`) and speculative decoding (`speculative`) are deterministic and
 * default to temperature 0.
 * @throws ApiError (400) naming the first field at fault.
 */
export function parseCompletionRequest(endpoint: 'completions' | 'chat', body: unknown): CompletionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidField('body', 'the request body must be a JSON object');
  }
  const fields = body as Body;
  if (has(fields, 'model') && typeof fields.model !== 'string') {
    throw invalidField('model', 'model must be a string');
  }
  refuseUnsupported(fields);
  const prompt = endpoint === 'completions' ? parsePrompt(fields) : undefined;
  const messages = endpoint === 'chat' ? parseMessages(fields) : undefined;
  const temperatureGiven = numberField(
    fields,
    'temperature',
    (value) => value >= 0 && value <= 2,
    'from 0 to 2',
  );
  const mode = parseMode(fields, { temperature: (temperatureGiven ?? 0) > 0 });
  const maxTokensName =
    endpoint === 'chat' && has(fields, 'max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = integerField(fields, maxTokensName, 1, Number.MAX_SAFE_INTEGER);
  const topP = numberField(fields, 'top_p', (value) => value > 0 && value <= 1, 'in (0, 1]') ?? 1;
  // top_k -1 means every token, as in vLLM.
  const topK = Math.max(0, integerField(fields, 'top_k', -1, Number.MAX_SAFE_INTEGER) ?? 0);
  const seed = integerField(fields, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const n = integerField(fields, 'n', 1, REQUEST_LIMITS.choices) ?? 1;
  const stream = booleanField(fields, 'stream') ?? false;
  let bestOf = n;
  if (has(fields, 'best_of')) {
    if (endpoint === 'chat') throw invalidField('best_of', 'best_of is an option of /v1/completions only');
    bestOf = integerField(fields, 'best_of', 1, REQUEST_LIMITS.choices)!;
    if (bestOf < n) throw invalidField('best_of', `best_of must be at least n (${n}), got ${bestOf}`);
    if (stream && bestOf > n) throw invalidField('best_of', 'best_of > n cannot be streamed');
  }
  let logprobs = false;
  let topLogprobs = 0;
  if (endpoint === 'completions') {
    const count = integerField(fields, 'logprobs', 0, REQUEST_LIMITS.topLogprobs);
    logprobs = count !== undefined;
    topLogprobs = count ?? 0;
  } else {
    logprobs = booleanField(fields, 'logprobs') ?? false;
    topLogprobs = integerField(fields, 'top_logprobs', 0, REQUEST_LIMITS.topLogprobs) ?? 0;
    if (topLogprobs > 0 && !logprobs) throw invalidField('top_logprobs', 'top_logprobs needs logprobs: true');
  }
  if (mode.kind === 'beam') {
    if (n > mode.width) throw invalidField('n', `n must be at most beam_width (${mode.width}), got ${n}`);
    if (bestOf > n) throw invalidField('best_of', 'best_of applies to sampling, not to beam search');
  }
  if (mode.kind === 'speculative') {
    if (n > 1 || bestOf > 1) throw invalidField('n', 'speculative decoding returns one choice: set n to 1');
    if (logprobs) {
      throw invalidField('logprobs', 'log-probabilities are not reported with speculative decoding');
    }
  }
  if (mode.kind !== 'sample' && topLogprobs > 0) {
    const name = endpoint === 'chat' ? 'top_logprobs' : 'logprobs';
    throw invalidField(name, `alternatives per token are reported for sampling only; ask for ${name} 0`);
  }
  let includeUsage = true;
  if (has(fields, 'stream_options')) {
    const options = fields.stream_options;
    const value = (options as { include_usage?: unknown } | null)?.include_usage;
    if (typeof options !== 'object' || (value !== undefined && typeof value !== 'boolean')) {
      throw invalidField('stream_options', 'stream_options must be an object like { "include_usage": true }');
    }
    includeUsage = value ?? true;
  }
  return {
    endpoint,
    prompt,
    messages,
    maxTokens,
    temperature: temperatureGiven ?? (mode.kind === 'sample' ? 1 : 0),
    topP,
    topK,
    seed,
    n,
    bestOf,
    logprobs,
    topLogprobs,
    stop: parseStop(fields),
    ignoreEos: booleanField(fields, 'ignore_eos') ?? false,
    stream,
    includeUsage,
    mode,
  };
}
