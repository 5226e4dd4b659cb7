import {
  beamSearch,
  bestOfN,
  type DecodeEvent,
  type GeneratedSequence,
  generate,
  type SessionOpener,
  speculativeDecode,
  treeOfThoughts,
} from '@deft/decoder';
import type { Tokenizer } from '@deft/model';
import type { RunSettings } from '../app/run-settings.js';

/** Tree-of-thoughts: open thoughts kept after each expansion, and thoughts per answer. */
const TOT_KEEP = 2;
const TOT_DEPTH = 3;
/** Speculative decoding's prompt-lookup drafts (the decoder's defaults): tokens per draft, drafts per step. */
const DRAFT_LENGTH = 6;
const DRAFT_BRANCHES = 4;

/**
 * KV pages for a pool that runs `settings` on a prompt of `promptLength` tokens.
 *
 * Guaranteed upper bounds (the pool never runs out) for greedy, beam search and best-of-n; an estimate for
 * speculative decoding and tree-of-thoughts (each sequence kept at once owning its whole path, with one partly
 * filled page).
 *
 * Beam search's bound: with `T = min(maxTokens, contextLength - promptLength)` generated tokens, the root holds
 * the prompt and the tokens appended before the first fork, `ceil(promptLength / pageSize) + ceil(T / pageSize)`
 * pages at most. Every other node starts on a fresh page (a fork never shares a partly filled page) and every
 * page holds at least one token, so those nodes hold at most one page per token. Before each step's pruning the
 * tree holds at most `width` beams of at most `T - 1` tokens plus `width` new tokens, so at most `width * T`
 * tokens outside the root. One more page covers a copy-on-write copy.
 */
export function pagesNeeded(
  settings: RunSettings,
  promptLength: number,
  contextLength: number,
  pageSize: number,
): number {
  const pages = (generated: number) =>
    Math.ceil(Math.min(promptLength + generated, contextLength) / pageSize) + 1;
  switch (settings.strategy) {
    case 'greedy':
      return pages(settings.maxTokens);
    case 'beam': {
      const generated = Math.max(0, Math.min(settings.maxTokens, contextLength - promptLength));
      return (
        Math.ceil(promptLength / pageSize) + Math.ceil(generated / pageSize) + 1 + settings.width * generated
      );
    }
    case 'best-of':
      return pages(settings.maxTokens) * settings.width;
    case 'speculative':
      return pages(settings.maxTokens + DRAFT_LENGTH) * (DRAFT_BRANCHES + 1);
    case 'tot':
      return pages(settings.maxTokens * TOT_DEPTH) * settings.width * TOT_KEEP;
  }
}

/** A running search: progress events, then the sequences it kept (the chosen one first). */
export type Search = AsyncGenerator<DecodeEvent, readonly GeneratedSequence[], undefined>;

/**
 * Starts the strategy of `settings` with the same options `deft generate` uses for it, stopping each
 * sequence at the tokenizer's end-of-generation tokens.
 * @example
 * ```ts
 * const sequences = await runStrategy(startSearch(engine, tokenizer, settings));
 * ```
 */
export async function* startSearch(
  engine: SessionOpener,
  tokenizer: Tokenizer,
  settings: RunSettings,
): Search {
  const common = {
    prompt: tokenizer.encode(settings.prompt),
    maxTokens: settings.maxTokens,
    stopTokens: [...tokenizer.endOfGenerationIds],
  };
  const sampling = { temperature: settings.temperature, topK: 0, topP: 1, seed: settings.seed };
  switch (settings.strategy) {
    case 'greedy': {
      const result = yield* generate(engine, { ...common, sampling: { ...sampling, temperature: 0 } });
      return [result.sequence];
    }
    case 'beam':
      return (yield* beamSearch(engine, { ...common, width: settings.width })).sequences;
    case 'best-of':
      return (yield* bestOfN(engine, { ...common, n: settings.width, sampling })).sequences;
    case 'speculative':
      return [
        (yield* speculativeDecode(engine, {
          ...common,
          draft: { draftLength: DRAFT_LENGTH, maxBranches: DRAFT_BRANCHES },
        })).sequence,
      ];
    case 'tot': {
      const thoughtEnd = ['.', '\n'].map((text) => tokenizer.encode(text, { bos: false }).at(-1)!);
      const result = yield* treeOfThoughts(engine, {
        ...common,
        branching: settings.width,
        keep: TOT_KEEP,
        maxDepth: TOT_DEPTH,
        thoughtEnd,
        sampling,
        score: (thought) => thought.logProbability / Math.max(1, thought.tokens.length),
      });
      const others = result.answers.slice(1).map((answer) => ({
        tokens: answer.pathTokens,
        logProbabilities: answer.pathLogProbabilities,
        score: answer.score,
        finishReason: 'length' as const,
      }));
      return [result.best, ...others];
    }
  }
}
