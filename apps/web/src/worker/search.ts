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
 * KV pages that always hold a run of `settings`: every sequence it keeps at once owning its whole path
 * (no sharing counted), each with one partly filled page.
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
    case 'beam': // live beams and finished hypotheses
      return pages(settings.maxTokens) * settings.width * 2;
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
