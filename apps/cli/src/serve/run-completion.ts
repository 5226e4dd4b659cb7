import {
  beamSearch,
  chooseToken,
  type DecodingSession,
  resolveSampling,
  runStrategy,
  SeededRandom,
  type SessionOpener,
  type SharedTreeEngine,
  speculativeDecode,
} from '@deft/decoder';
import type { Tokenizer, TokenTextStream } from '@deft/model';
import type { CompletionRequest } from './completion-request.js';
import { StopMatcher } from './stop-matcher.js';

/** Why a choice ended, as OpenAI names it (`length` also covers the model's context length). */
export type ChoiceFinish = 'stop' | 'length';

/** A token with its log-probability (natural log) and, when asked, the most likely alternatives. */
export interface TokenLogprob {
  readonly token: number;
  readonly text: string;
  readonly logprob: number;
  readonly top: readonly { readonly token: number; readonly text: string; readonly logprob: number }[];
}

/** New text of one choice, for streaming. */
export interface ChoiceDelta {
  readonly index: number;
  readonly text: string;
  readonly logprobs: readonly TokenLogprob[];
  /** Set on the choice's last delta. */
  readonly finishReason: ChoiceFinish | null;
}

/** One returned choice. */
export interface ChoiceResult {
  readonly index: number;
  readonly text: string;
  /** Generated token ids (the end-of-sequence token included when it ended the choice). */
  readonly tokens: readonly number[];
  readonly logprobs: readonly TokenLogprob[];
  readonly finishReason: ChoiceFinish;
}

/** What {@link runCompletion} did. */
export interface CompletionOutcome {
  /** `false` when the client went away: nothing more is sent. */
  readonly completed: boolean;
  readonly choices: readonly ChoiceResult[];
  readonly promptTokens: number;
  /** Every token generated for the request, best_of sequences that were not returned included. */
  readonly completionTokens: number;
}

/** A request ready to run: the checked fields and the prompt as token ids. */
export interface CompletionJob {
  readonly shared: SharedTreeEngine;
  readonly tokenizer: Tokenizer;
  readonly request: CompletionRequest;
  readonly prompt: readonly number[];
  /** Stop strings of the chat template, added to the request's own. */
  readonly templateStops: readonly string[];
  /** Aborted when the client disconnects: the request's sessions are released at once. */
  readonly signal: AbortSignal;
  /** Streaming: called with each piece of new text. */
  readonly onDelta?: (delta: ChoiceDelta) => void;
}

/** The default `max_tokens` of `/v1/completions` (OpenAI's); chat replies default to the context left. */
export const DEFAULT_COMPLETION_TOKENS = 16;

/**
 * Pages a request's sequences may take at once after its prompt pass: one per sequence forked from the
 * prompt (`best_of`, the beam width), or the pages of a draft tree.
 */
function fanOutPages(request: CompletionRequest, pageSize: number): number {
  const mode = request.mode;
  if (mode.kind === 'beam') return mode.width;
  if (mode.kind === 'speculative') return mode.draftBranches * Math.ceil(mode.draftLength / pageSize) + 1;
  return request.bestOf;
}

/**
 * Opens sessions on the shared tree and remembers them, so a cancelled request can release them. Once a
 * session's prompt holds its pieces, idle cached prompts are evicted (when pages are short) until its
 * sequences can fork: the passes keep only one free page per live leaf.
 */
function trackingOpener(shared: SharedTreeEngine, opened: DecodingSession[], fanOut: number): SessionOpener {
  return {
    openSession(prompt) {
      const session = shared.openSession(prompt);
      opened.push(session);
      shared.evictCached(fanOut);
      return session;
    },
  };
}

function topAlternatives(
  tokenizer: Tokenizer,
  row: Float32Array,
  count: number,
): { token: number; text: string; logprob: number }[] {
  if (count === 0) return [];
  const best: number[] = [];
  for (let token = 0; token < row.length; token++) {
    const value = row[token]!;
    if (best.length === count) {
      if (value <= row[best[count - 1]!]!) continue;
      best.pop();
    }
    let at = best.length;
    best.push(token);
    while (at > 0 && row[best[at - 1]!]! < value) {
      best[at] = best[at - 1]!;
      at--;
    }
    best[at] = token;
  }
  return best.map((token) => ({ token, text: tokenText(tokenizer, token), logprob: row[token]! }));
}

function tokenText(tokenizer: Tokenizer, token: number): string {
  return tokenizer.decode([token], { stripLeadingSpace: false });
}

/** Per choice: its text so far, held back only while it might be the start of a stop string. */
class ChoiceText {
  private readonly stream: TokenTextStream;
  private readonly matcher: StopMatcher;
  text = '';

  constructor(tokenizer: Tokenizer, stops: readonly string[]) {
    this.stream = tokenizer.createTextStream({ stripLeadingSpace: false });
    this.matcher = new StopMatcher(stops);
  }

  get stopped(): boolean {
    return this.matcher.stopped;
  }

  /** Adds a token; returns the text that may be sent now. */
  push(token: number): string {
    const piece = this.matcher.push(this.stream.push(token)).text;
    this.text += piece;
    return piece;
  }

  /** The text still held back, at the end of the choice. */
  finish(): string {
    const piece = this.matcher.stopped
      ? ''
      : this.matcher.push(this.stream.flush()).text + this.matcher.flush();
    this.text += piece;
    return piece;
  }
}

/**
 * Runs one request on the shared tree: sampling (`n` choices, or the best `n` of `best_of`) with its own
 * loop over a session, so every token's log-probability and alternatives can be reported as it is
 * chosen; beam search and speculative decoding through the decoder's strategies. Every session is
 * released when the request ends, fails or is cancelled.
 *
 * @throws whatever opening a session throws (CapacityError for a full page pool, InvalidArgumentError for
 *   a prompt beyond the context length), before anything is sent.
 */
export async function runCompletion(job: CompletionJob): Promise<CompletionOutcome> {
  const opened: DecodingSession[] = [];
  const cancel = () => {
    for (const session of opened) session.release();
  };
  job.signal.addEventListener('abort', cancel, { once: true });
  try {
    const opener = trackingOpener(
      job.shared,
      opened,
      fanOutPages(job.request, job.shared.engine.pool.pageSize),
    );
    const mode = job.request.mode;
    if (mode.kind === 'beam') return await runBeam(job, opener, mode);
    if (mode.kind === 'speculative') return await runSpeculative(job, opener, mode);
    return await runSampling(job, opener.openSession(job.prompt));
  } catch (error) {
    if (job.signal.aborted)
      return { completed: false, choices: [], promptTokens: job.prompt.length, completionTokens: 0 };
    throw error;
  } finally {
    job.signal.removeEventListener('abort', cancel);
    cancel();
  }
}

/** The tokens that end a sequence: the tokenizer's end-of-generation ids (EOS, end of turn), none with `ignore_eos`. */
function stopTokensOf(job: CompletionJob): ReadonlySet<number> {
  return new Set(job.request.ignoreEos ? [] : job.tokenizer.endOfGenerationIds);
}

function maxTokensOf(job: CompletionJob, contextLength: number): number {
  const room = contextLength - job.prompt.length;
  const asked = job.request.maxTokens ?? (job.request.endpoint === 'chat' ? room : DEFAULT_COMPLETION_TOKENS);
  return Math.max(1, Math.min(asked, room));
}

interface Sequence {
  readonly index: number;
  node: number;
  readonly tokens: number[];
  readonly logprobs: TokenLogprob[];
  sum: number;
  readonly random: SeededRandom;
  readonly text: ChoiceText;
  finish: ChoiceFinish | undefined;
}

async function runSampling(job: CompletionJob, session: DecodingSession): Promise<CompletionOutcome> {
  const { request, tokenizer } = job;
  const seed = request.seed ?? Math.floor(Math.random() * 2 ** 31);
  const sampling = resolveSampling({
    temperature: request.temperature,
    topK: request.topK,
    topP: request.topP,
    seed,
  });
  const maxTokens = maxTokensOf(job, session.contextLength);
  const stops = [...request.stop, ...job.templateStops];
  const stopIds = stopTokensOf(job);
  const tree = session.tree;
  const sequences: Sequence[] = Array.from({ length: request.bestOf }, (_, index) => ({
    index,
    node: session.root,
    tokens: [],
    logprobs: [],
    sum: 0,
    // Sequence i draws from stream i of the seed, as bestOfN and generate of @deft/decoder do.
    random: new SeededRandom(sampling.seed, index),
    text: new ChoiceText(tokenizer, stops),
    finish: undefined,
  }));
  const advance = (sequence: Sequence, row: Float32Array) => {
    const chosen = chooseToken(row, sampling, sequence.random);
    const token = chosen.token;
    sequence.tokens.push(token);
    sequence.sum += chosen.logProbability;
    const entry: TokenLogprob = {
      token,
      text: tokenText(tokenizer, token),
      logprob: chosen.logProbability,
      top: topAlternatives(tokenizer, row, request.topLogprobs),
    };
    if (request.logprobs) sequence.logprobs.push(entry);
    let text = '';
    if (stopIds.has(token)) sequence.finish = 'stop';
    else {
      text = sequence.text.push(token);
      if (sequence.text.stopped) sequence.finish = 'stop';
      else if (sequence.tokens.length >= maxTokens || session.contextRoom(sequence.node) <= 1)
        sequence.finish = 'length';
    }
    if (sequence.finish === undefined) tree.append(sequence.node, token);
    else {
      text += sequence.text.finish();
      if (sequence.node !== session.root && tree.has(sequence.node)) tree.prune(sequence.node);
    }
    if (sequence.index < request.n && (text !== '' || sequence.finish !== undefined || request.logprobs)) {
      job.onDelta?.({
        index: sequence.index,
        text,
        logprobs: request.logprobs ? [entry] : [],
        finishReason: sequence.finish ?? null,
      });
    }
  };

  const prefill = await session.evaluate();
  const promptRow = prefill.row(session.root)!;
  if (sequences.length === 1) advance(sequences[0]!, promptRow);
  else {
    const children = tree.fork(session.root, sequences.length);
    sequences.forEach((sequence, index) => {
      sequence.node = children[index]!;
    });
    for (const sequence of sequences) advance(sequence, promptRow);
  }
  while (sequences.some((sequence) => sequence.finish === undefined)) {
    const evaluation = await session.evaluate();
    for (const sequence of sequences) {
      if (sequence.finish === undefined) advance(sequence, evaluation.row(sequence.node)!);
    }
  }
  const completionTokens = sequences.reduce((sum, sequence) => sum + sequence.tokens.length, 0);
  // best_of: the n with the highest mean log-probability per token, ties in sequence order.
  const returned =
    request.bestOf > request.n
      ? [...sequences]
          .sort(
            (a, b) =>
              b.sum / Math.max(1, b.tokens.length) - a.sum / Math.max(1, a.tokens.length) ||
              a.index - b.index,
          )
          .slice(0, request.n)
      : sequences;
  return {
    completed: true,
    promptTokens: job.prompt.length,
    completionTokens,
    choices: returned.map((sequence, index) => ({
      index,
      text: sequence.text.text,
      tokens: sequence.tokens,
      logprobs: sequence.logprobs,
      finishReason: sequence.finish ?? 'length',
    })),
  };
}

/** A whole sequence decoded by a strategy, as a choice: text cut at a stop string, EOS not shown. */
function choiceOf(
  job: CompletionJob,
  index: number,
  tokens: readonly number[],
  logProbabilities: readonly number[],
  finish: string,
): ChoiceResult {
  const { tokenizer, request } = job;
  const text = new ChoiceText(tokenizer, [...request.stop, ...job.templateStops]);
  const last = tokens.at(-1);
  const shown =
    finish === 'stop' && last !== undefined && stopTokensOf(job).has(last) ? tokens.slice(0, -1) : tokens;
  for (const token of shown) if (!text.stopped) text.push(token);
  text.finish();
  return {
    index,
    text: text.text,
    tokens,
    logprobs: request.logprobs
      ? tokens.map((token, at) => ({
          token,
          text: tokenText(tokenizer, token),
          logprob: logProbabilities[at]!,
          top: [],
        }))
      : [],
    finishReason: finish === 'stop' || text.stopped ? 'stop' : 'length',
  };
}

async function runBeam(
  job: CompletionJob,
  opener: SessionOpener,
  mode: { width: number; lengthPenalty: number },
): Promise<CompletionOutcome> {
  const contextLength = job.shared.engine.model.config.contextLength;
  const result = await runStrategy(
    beamSearch(opener, {
      prompt: job.prompt,
      width: mode.width,
      lengthPenalty: mode.lengthPenalty,
      maxTokens: maxTokensOf(job, contextLength),
      stopTokens: [...stopTokensOf(job)],
    }),
  );
  const choices = result.sequences
    .slice(0, job.request.n)
    .map((sequence, index) =>
      choiceOf(job, index, sequence.tokens, sequence.logProbabilities, sequence.finishReason),
    );
  for (const choice of choices) {
    job.onDelta?.({
      index: choice.index,
      text: choice.text,
      logprobs: choice.logprobs,
      finishReason: choice.finishReason,
    });
  }
  return {
    completed: true,
    promptTokens: job.prompt.length,
    completionTokens: choices.reduce((sum, choice) => sum + choice.tokens.length, 0),
    choices,
  };
}

async function runSpeculative(
  job: CompletionJob,
  opener: SessionOpener,
  mode: { draftLength: number; draftBranches: number },
): Promise<CompletionOutcome> {
  const { tokenizer } = job;
  const contextLength = job.shared.engine.model.config.contextLength;
  const maxTokens = maxTokensOf(job, contextLength);
  const text = new ChoiceText(tokenizer, [...job.request.stop, ...job.templateStops]);
  const stopIds = stopTokensOf(job);
  const tokens: number[] = [];
  let finish: ChoiceFinish = 'length';
  const strategy = speculativeDecode(opener, {
    prompt: job.prompt,
    maxTokens,
    stopTokens: [...stopIds],
    draft: { draftLength: mode.draftLength, maxBranches: mode.draftBranches },
  });
  // Breaking out of the loop closes the strategy, which releases its session.
  for await (const event of strategy) {
    let piece = '';
    for (const token of event.tokens[0]?.tokens ?? []) {
      tokens.push(token);
      if (stopIds.has(token)) {
        finish = 'stop';
        break;
      }
      piece += text.push(token);
      if (text.stopped) {
        finish = 'stop';
        break;
      }
    }
    if (finish === 'stop') {
      piece += text.finish();
      job.onDelta?.({ index: 0, text: piece, logprobs: [], finishReason: 'stop' });
      break;
    }
    if (piece !== '') job.onDelta?.({ index: 0, text: piece, logprobs: [], finishReason: null });
  }
  if (finish === 'length')
    job.onDelta?.({ index: 0, text: text.finish(), logprobs: [], finishReason: 'length' });
  return {
    completed: true,
    promptTokens: job.prompt.length,
    completionTokens: tokens.length,
    choices: [{ index: 0, text: text.text, tokens, logprobs: [], finishReason: finish }],
  };
}
