import { InvalidArgumentError } from '@deft/core';
import type { TokenTree } from '@deft/tree';
import { type DraftNode, draftTokenCount } from '../draft/draft-tree.js';
import { type Drafter, isDrafter } from '../draft/drafter.js';
import { type PromptLookupOptions, promptLookupDraft } from '../draft/prompt-lookup-draft.js';
import type { DecodeEvent } from '../engine/decode-events.js';
import type { DecodeStats } from '../engine/decode-stats.js';
import type { DecodingSession } from '../engine/decoding-session.js';
import type { FinishReason, GeneratedSequence } from '../engine/generated-sequence.js';
import type { SessionOpener } from '../engine/session-opener.js';
import { chooseToken } from '../sampling/choose-token.js';
import { samplingDistribution } from '../sampling/sampling-distribution.js';
import { resolveSampling, type SamplingOptions } from '../sampling/sampling-options.js';
import { SeededRandom } from '../sampling/seeded-random.js';
import { type DraftAcceptanceRule, speculativeSample } from '../sampling/speculative-sample.js';
import { type CommonDecodeOptions, resolveCommon } from './common-options.js';

/** Proposes a draft token tree from the context (every token so far, the newest last). */
export type DraftProposer = (context: readonly number[]) => DraftNode[] | Promise<DraftNode[]>;

/** Options of {@link speculativeDecode}. */
export interface SpeculativeOptions extends CommonDecodeOptions {
  /**
   * The draft: prompt-lookup options (default), a {@link Drafter} (`promptLookupDrafter`, a
   * `ModelDrafter` over a smaller model or the target's first layers), or a function returning a draft tree.
   */
  readonly draft?: PromptLookupOptions | Drafter | DraftProposer;
  /**
   * Greedy when omitted or at temperature 0 (output identical to greedy decoding). At a temperature > 0
   * the draft is verified by multi-draft speculative sampling ({@link speculativeSample}), so the output
   * is distributed exactly as {@link generate}'s sampling at the same options; the seed fixes the run.
   */
  readonly sampling?: SamplingOptions;
}

/**
 * How well the drafts did, and where the time went. A pass is worth it when `tokensPerPass` outweighs what
 * a pass costs against a plain decoding step: `(draftMs + verifyMs) / passes` against the plain step time.
 */
export interface AcceptanceStats {
  /** Draft tokens proposed over the run. */
  readonly proposed: number;
  /** Draft tokens accepted. */
  readonly accepted: number;
  /** `accepted / proposed` (0 when nothing was proposed). */
  readonly rate: number;
  /** Verification passes (forward passes after the prefill). */
  readonly passes: number;
  /** Draft tokens accepted per verification pass (`accepted / passes`; 0 means drafting never paid). */
  readonly acceptedPerPass: number;
  /** Draft tokens proposed per verification pass (the draft trees' mean size). */
  readonly proposedPerPass: number;
  /**
   * Generated tokens per verification pass, the prefill's token aside (`acceptedPerPass + 1` unless the
   * run stopped on an accepted token; 1 means no gain over plain decoding).
   */
  readonly tokensPerPass: number;
  /** Wall time spent drafting, in milliseconds (the drafter's `draft` calls). */
  readonly draftMs: number;
  /**
   * Wall time of the verification passes, in milliseconds: growing the draft tree, the forward pass over
   * it, acceptance, and committing the accepted path.
   */
  readonly verifyMs: number;
  /** Wall time of the prefill pass, in milliseconds. */
  readonly prefillMs: number;
}

/** Result of {@link speculativeDecode}. */
export interface SpeculativeResult {
  readonly sequence: GeneratedSequence;
  readonly acceptance: AcceptanceStats;
  readonly stats: DecodeStats;
  readonly tree: TokenTree;
}

interface Cursor {
  readonly node: number;
  readonly position: number;
}

/** Adds a draft trie below `parent`, compressing single-child chains into multi-token nodes. */
function growDraft(tree: TokenTree, parent: number, drafts: readonly DraftNode[]): void {
  if (drafts.length === 0) return;
  const children = tree.fork(parent, drafts.length);
  drafts.forEach((draft, index) => {
    const node = children[index]!;
    const tokens = [draft.token];
    let current = draft;
    while (current.children.length === 1) {
      current = current.children[0]!;
      tokens.push(current.token);
    }
    tree.append(node, tokens);
    growDraft(tree, node, current.children);
  });
}

/** The draft cut to at most `depth` tokens along every path (the room left in the model's context). */
function limitDraftDepth(drafts: readonly DraftNode[], depth: number): DraftNode[] {
  if (depth <= 0) return [];
  return drafts.map((draft) => ({
    token: draft.token,
    children: limitDraftDepth(draft.children, depth - 1),
  }));
}

/** The draft unchanged, after checking that every token is an id of the model. */
function checkDraft(drafts: DraftNode[], vocabSize: number): DraftNode[] {
  const visit = (nodes: readonly DraftNode[]): void => {
    for (const node of nodes) {
      if (!(Number.isInteger(node.token) && node.token >= 0 && node.token < vocabSize)) {
        throw new InvalidArgumentError(
          `the draft proposed token ${String(node.token)}, not an id of the model (vocabulary ${vocabSize})`,
          { argument: 'draft[].token', expected: `0 <= id < ${vocabSize}`, actual: node.token },
        );
      }
      visit(node.children);
    }
  };
  visit(drafts);
  return drafts;
}

/** The draft positions that may follow `cursor`: the next token of its node, or its children's first tokens. */
function followers(session: DecodingSession, cursor: Cursor): Cursor[] {
  const tree = session.tree;
  if (cursor.position + 1 < tree.tokenCount(cursor.node))
    return [{ node: cursor.node, position: cursor.position + 1 }];
  return tree.children(cursor.node).map((child) => ({ node: child, position: 0 }));
}

/**
 * Speculative decoding with token trees: a draft (prompt lookup / n-gram matching by default) proposes a
 * tree of continuations below the sequence's leaf, one forward pass verifies the whole tree (every draft
 * token is a query, attending through its own path), the accepted path is committed into the leaf (its KV
 * kept, copied into the leaf's pages when needed) and the rest is pruned; the model's own next token
 * follows. Greedy (the default): a draft token is accepted when it is the model's argmax, so the output
 * is identical to greedy decoding. Sampling (`sampling.temperature > 0`): at each node of the accepted
 * path the children are verified by multi-draft speculative sampling ({@link speculativeSample}), so the
 * output is distributed exactly as plain sampling from the model.
 *
 * @throws InvalidArgumentError for bad options.
 * @example
 * ```ts
 * const result = await runStrategy(speculativeDecode(engine, { prompt, maxTokens: 200, stopTokens: [eos] }));
 * console.log(result.acceptance.rate, result.acceptance.tokensPerPass);
 * ```
 */
export function speculativeDecode(
  engine: SessionOpener,
  options: SpeculativeOptions,
): AsyncGenerator<DecodeEvent, SpeculativeResult, undefined> {
  return speculativeDecodeWithRule(engine, options, speculativeSample);
}

/**
 * {@link speculativeDecode} with the verification rule given (the exact rule is {@link speculativeSample});
 * kept apart so tests can check that a wrong rule is detected.
 */
export async function* speculativeDecodeWithRule(
  engine: SessionOpener,
  options: SpeculativeOptions,
  rule: DraftAcceptanceRule,
): AsyncGenerator<DecodeEvent, SpeculativeResult, undefined> {
  const { maxTokens, stopTokens } = resolveCommon(options);
  const sampling = resolveSampling(options.sampling);
  const random = new SeededRandom(sampling.seed, 0);
  const draftOption = options.draft;
  // Every form of the option as a drafter: a function or prompt-lookup options have no vocabulary and nothing to reset.
  const drafter: Drafter = isDrafter(draftOption)
    ? draftOption
    : typeof draftOption === 'function'
      ? { draft: async (context) => await draftOption(context) }
      : { draft: async (context) => promptLookupDraft(context, draftOption ?? {}) };
  const session = engine.openSession(options.prompt);
  const vocabSize = session.engine.model.config.vocabSize;
  if (drafter.vocabSize !== undefined && drafter.vocabSize !== vocabSize) {
    session.release();
    throw new InvalidArgumentError(
      `the drafter's vocabulary has ${drafter.vocabSize} tokens, the model's ${vocabSize}; ` +
        "draft with a model that shares the target's tokenizer",
      { argument: 'options.draft', expected: vocabSize, actual: drafter.vocabSize },
    );
  }
  const tree = session.tree;
  const leaf = session.root;
  const context = Array.from(options.prompt);
  const tokens: number[] = [];
  const logProbabilities: number[] = [];
  let finishReason: FinishReason | undefined;
  let proposed = 0;
  let accepted = 0;
  let passes = 0;
  const emit = (token: number, logProbability: number): boolean => {
    tokens.push(token);
    logProbabilities.push(logProbability);
    context.push(token);
    if (stopTokens.has(token)) finishReason = 'stop';
    else if (tokens.length >= maxTokens) finishReason = 'length';
    else if (context.length >= session.contextLength) finishReason = 'context';
    return finishReason === undefined;
  };
  let draftMs = 0;
  let verifyMs = 0;
  let prefillMs = 0;
  try {
    const prefillStart = performance.now();
    const prefill = await session.evaluate();
    const first = chooseToken(prefill.row(leaf)!, sampling, random);
    let next = first.token;
    let goOn = emit(first.token, first.logProbability);
    prefillMs = performance.now() - prefillStart;
    yield {
      type: 'step',
      strategy: 'speculative',
      step: 0,
      stats: prefill.stats,
      tokens: [{ sequence: 0, tokens: [next] }],
    };
    for (let step = 1; goOn; step++) {
      // The model's own next token is certain; the draft guesses what follows it.
      tree.append(leaf, next);
      const room = session.contextRoom(leaf);
      const draftStart = performance.now();
      const draft = checkDraft(
        limitDraftDepth(await drafter.draft(context, { maxDepth: room }), room),
        vocabSize,
      );
      const verifyStart = performance.now();
      draftMs += verifyStart - draftStart;
      growDraft(tree, leaf, draft);
      proposed += draftTokenCount(draft);
      const evaluation = await session.evaluate({ rows: 'all' });
      passes++;
      let cursor: Cursor = { node: leaf, position: tree.tokenCount(leaf) - 1 };
      const stepTokens: number[] = [];
      for (;;) {
        const row = evaluation.row(cursor.node, cursor.position)!;
        const candidates = followers(session, cursor);
        const verdict = rule(
          samplingDistribution(row, sampling),
          candidates.map((candidate) => tree.tokens(candidate.node)[candidate.position]!),
          random,
        );
        next = verdict.token;
        stepTokens.push(next);
        goOn = emit(next, row[next]!);
        const match = candidates[verdict.child];
        if (match === undefined) break;
        accepted++;
        cursor = match;
        if (!goOn) break;
      }
      // Keep the accepted path in the leaf and drop every other draft node.
      if (cursor.node === leaf) tree.commitPath(leaf, undefined, leaf);
      else tree.commitPath(cursor.node, cursor.position + 1, leaf);
      verifyMs += performance.now() - verifyStart;
      yield {
        type: 'step',
        strategy: 'speculative',
        step,
        stats: evaluation.stats,
        tokens: [{ sequence: 0, tokens: stepTokens }],
      };
    }
    const sum = logProbabilities.reduce((total, value) => total + value, 0);
    return {
      sequence: { tokens, logProbabilities, score: sum, finishReason: finishReason ?? 'length' },
      acceptance: {
        proposed,
        accepted,
        rate: proposed === 0 ? 0 : accepted / proposed,
        passes,
        acceptedPerPass: passes === 0 ? 0 : accepted / passes,
        proposedPerPass: passes === 0 ? 0 : proposed / passes,
        tokensPerPass: passes === 0 ? tokens.length : (tokens.length - 1) / passes,
        draftMs,
        verifyMs,
        prefillMs,
      },
      stats: session.summary(),
      tree,
    };
  } finally {
    session.release();
    drafter.reset?.();
  }
}
