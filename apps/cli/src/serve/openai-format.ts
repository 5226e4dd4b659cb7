import type { ChoiceDelta, ChoiceResult, CompletionOutcome, TokenLogprob } from './run-completion.js';

/** Names and time shared by every object of one response. */
export interface ResponseContext {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly endpoint: 'completions' | 'chat';
}

/** OpenAI's `usage` object. */
export function usageOf(outcome: Pick<CompletionOutcome, 'promptTokens' | 'completionTokens'>) {
  return {
    prompt_tokens: outcome.promptTokens,
    completion_tokens: outcome.completionTokens,
    total_tokens: outcome.promptTokens + outcome.completionTokens,
  };
}

const bytesOf = (text: string) => Array.from(Buffer.from(text, 'utf8'));

/** `logprobs` of a `/v1/completions` choice: parallel arrays, text offsets from the start of the choice. */
function completionLogprobs(entries: readonly TokenLogprob[], offset: number) {
  const textOffset: number[] = [];
  let at = offset;
  for (const entry of entries) {
    textOffset.push(at);
    at += entry.text.length;
  }
  return {
    tokens: entries.map((entry) => entry.text),
    token_logprobs: entries.map((entry) => entry.logprob),
    top_logprobs: entries.map((entry) => Object.fromEntries(entry.top.map((top) => [top.text, top.logprob]))),
    text_offset: textOffset,
  };
}

/** `logprobs` of a chat choice: one entry per token with its bytes and alternatives. */
function chatLogprobs(entries: readonly TokenLogprob[]) {
  return {
    content: entries.map((entry) => ({
      token: entry.text,
      logprob: entry.logprob,
      bytes: bytesOf(entry.text),
      top_logprobs: entry.top.map((top) => ({
        token: top.text,
        logprob: top.logprob,
        bytes: bytesOf(top.text),
      })),
    })),
  };
}

/** The whole (non-streamed) response. */
export function completionResponse(context: ResponseContext, outcome: CompletionOutcome, logprobs: boolean) {
  const usage = usageOf(outcome);
  if (context.endpoint === 'completions') {
    return {
      id: context.id,
      object: 'text_completion',
      created: context.created,
      model: context.model,
      choices: outcome.choices.map((choice: ChoiceResult) => ({
        index: choice.index,
        text: choice.text,
        logprobs: logprobs ? completionLogprobs(choice.logprobs, 0) : null,
        finish_reason: choice.finishReason,
      })),
      usage,
    };
  }
  return {
    id: context.id,
    object: 'chat.completion',
    created: context.created,
    model: context.model,
    choices: outcome.choices.map((choice) => ({
      index: choice.index,
      message: { role: 'assistant', content: choice.text },
      logprobs: logprobs ? chatLogprobs(choice.logprobs) : null,
      finish_reason: choice.finishReason,
    })),
    usage,
  };
}

/** Streams the chunks of one response in OpenAI's format. */
export class ChunkWriter {
  private readonly context: ResponseContext;
  private readonly logprobs: boolean;
  /** Characters sent per choice (completions' `text_offset`). */
  private readonly sent = new Map<number, number>();

  constructor(context: ResponseContext, logprobs: boolean) {
    this.context = context;
    this.logprobs = logprobs;
  }

  private envelope(choices: unknown[]) {
    const { id, created, model, endpoint } = this.context;
    return {
      id,
      object: endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created,
      model,
      choices,
    };
  }

  /** Chat: the first chunk of every choice, naming the role. */
  roleChunks(choices: number): unknown[] {
    if (this.context.endpoint !== 'chat') return [];
    return Array.from({ length: choices }, (_, index) =>
      this.envelope([
        { index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
      ]),
    );
  }

  /** The chunk carrying one delta (its text, log-probabilities and finish reason). */
  deltaChunk(delta: ChoiceDelta): unknown {
    const offset = this.sent.get(delta.index) ?? 0;
    this.sent.set(delta.index, offset + delta.text.length);
    if (this.context.endpoint === 'completions') {
      return this.envelope([
        {
          index: delta.index,
          text: delta.text,
          logprobs: this.logprobs ? completionLogprobs(delta.logprobs, offset) : null,
          finish_reason: delta.finishReason,
        },
      ]);
    }
    return this.envelope([
      {
        index: delta.index,
        delta: delta.text === '' && delta.finishReason !== null ? {} : { content: delta.text },
        logprobs: this.logprobs ? chatLogprobs(delta.logprobs) : null,
        finish_reason: delta.finishReason,
      },
    ]);
  }

  /** The last chunk: no choices, the usage counts. */
  usageChunk(outcome: CompletionOutcome): unknown {
    return { ...this.envelope([]), usage: usageOf(outcome) };
  }
}
