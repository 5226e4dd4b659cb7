import { InvalidArgumentError } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import type { TokenTree } from '@deft/tree';
import type { DecodeEvent, SequenceTokens } from '../engine/decode-events.js';
import type { DecodeStats } from '../engine/decode-stats.js';
import type { GeneratedSequence } from '../engine/generated-sequence.js';
import type { SessionOpener } from '../engine/session-opener.js';
import { chooseToken } from '../sampling/choose-token.js';
import { resolveSampling, type SamplingOptions } from '../sampling/sampling-options.js';
import { SeededRandom } from '../sampling/seeded-random.js';
import { type CommonDecodeOptions, resolveCommon } from './common-options.js';

/** A thought offered to the scoring callback. */
export interface ThoughtCandidate {
  /** Depth of the thought (1 for the first thoughts after the prompt). */
  readonly depth: number;
  /** Tokens of this thought. */
  readonly tokens: readonly number[];
  /** Every generated token from the prompt's end through this thought. */
  readonly pathTokens: readonly number[];
  /** Sum of the thought's token log-probabilities. */
  readonly logProbability: number;
  /** True when the thought ended with a stop token (the answer is complete). */
  readonly stopped: boolean;
}

/** What a scoring callback returns: a score (higher is better), optionally marking a complete answer. */
export type ThoughtScore = number | { readonly score: number; readonly done?: boolean };

/** Options of {@link treeOfThoughts}. `maxTokens` bounds the tokens of one thought. */
export interface TreeOfThoughtsOptions extends CommonDecodeOptions {
  /** Thoughts sampled per expansion (`k`). */
  readonly branching: number;
  /** Frontier size kept after each expansion (`b`): the best open thoughts at any depth. */
  readonly keep: number;
  /** Deepest thought; a thought at this depth is a complete answer. */
  readonly maxDepth: number;
  /** Expansions before the search stops. Default `maxDepth × keep`. */
  readonly maxExpansions?: number;
  /** Tokens that end a thought (kept in it), e.g. the newline or period ids. */
  readonly thoughtEnd?: readonly number[];
  /** Scores a thought; may be async (a verifier, a value model, a heuristic). */
  readonly score: (thought: ThoughtCandidate) => ThoughtScore | Promise<ThoughtScore>;
  /** Sampling of thoughts (default temperature 1, seed 0); thought `j` of expansion `e` uses its own stream. */
  readonly sampling?: SamplingOptions;
}

/** A scored thought kept by the search. */
export interface ScoredThought {
  readonly depth: number;
  readonly score: number;
  readonly done: boolean;
  /** Generated tokens from the prompt's end through this thought. */
  readonly pathTokens: readonly number[];
  readonly pathLogProbabilities: readonly number[];
}

/** Result of {@link treeOfThoughts}. */
export interface TreeOfThoughtsResult {
  /** The best complete answer, or the best open thought when none completed. */
  readonly best: GeneratedSequence;
  /** Complete answers found, best first. */
  readonly answers: readonly ScoredThought[];
  /** Thoughts generated and scored. */
  readonly thoughts: number;
  readonly expansions: number;
  readonly stats: DecodeStats;
  readonly tree: TokenTree;
}

interface OpenThought extends ScoredThought {
  readonly node: number;
  /** Log-probabilities of the token after the thought's last token (to expand it). */
  readonly nextRow: Float32Array;
}

interface Growing {
  readonly node: number;
  readonly tokens: number[];
  readonly logProbabilities: number[];
  readonly random: SeededRandom;
  ended: boolean;
  stopped: boolean;
  nextRow: Float32Array | undefined;
}

/**
 * Tree-of-thoughts search with backtracking: the best open thought (at any depth) is expanded into
 * `branching` sampled thoughts generated in parallel (one pass per token for all of them), each is scored by
 * the callback, and only the `keep` best open thoughts survive; the others are pruned with every node no
 * survivor needs, so their pages are freed at once. Because survivors compete across depths, a poor
 * expansion makes the search fall back to an earlier, better thought (backtracking).
 *
 * @throws InvalidArgumentError for bad options; whatever the callback throws (the session is released).
 * @example
 * ```ts
 * const result = await runStrategy(treeOfThoughts(engine, {
 *   prompt, branching: 3, keep: 2, maxDepth: 3, maxTokens: 16, thoughtEnd: [periodId],
 *   score: ({ pathTokens }) => verifier(pathTokens),
 * }));
 * ```
 */
export async function* treeOfThoughts(
  engine: SessionOpener,
  options: TreeOfThoughtsOptions,
): AsyncGenerator<DecodeEvent, TreeOfThoughtsResult, undefined> {
  const { maxTokens, stopTokens } = resolveCommon(options);
  const branching = assertInteger('branching', options.branching, 1);
  const keep = assertInteger('keep', options.keep, 1);
  const maxDepth = assertInteger('maxDepth', options.maxDepth, 1);
  const maxExpansions = assertInteger('maxExpansions', options.maxExpansions ?? maxDepth * keep, 1);
  if (typeof options.score !== 'function') {
    throw new InvalidArgumentError('score must be a function scoring a thought', {
      argument: 'score',
      expected: 'function',
      actual: typeof options.score,
    });
  }
  const thoughtEnd = new Set(options.thoughtEnd ?? []);
  const sampling = resolveSampling({ temperature: 1, ...options.sampling });
  const session = engine.openSession(options.prompt);
  const tree = session.tree;
  const answers: ScoredThought[] = [];
  let thoughts = 0;
  let expansions = 0;
  let step = 0;
  try {
    const prefill = await session.evaluate();
    yield { type: 'step', strategy: 'tree-of-thoughts', step: step++, stats: prefill.stats, tokens: [] };
    let frontier: OpenThought[] = [
      {
        node: session.root,
        depth: 0,
        score: 0,
        done: false,
        pathTokens: [],
        pathLogProbabilities: [],
        nextRow: prefill.row(session.root)!.slice(),
      },
    ];
    while (expansions < maxExpansions && frontier.length > 0) {
      // Best open thought first; ties go to the deeper, then the older one.
      const parent = frontier.reduce((best, candidate) =>
        candidate.score > best.score || (candidate.score === best.score && candidate.depth > best.depth)
          ? candidate
          : best,
      );
      frontier = frontier.filter((candidate) => candidate !== parent);
      const children = tree.fork(parent.node, branching);
      const growing: Growing[] = children.map((node, index) => ({
        node,
        tokens: [],
        logProbabilities: [],
        random: new SeededRandom(sampling.seed, expansions * branching + index),
        ended: false,
        stopped: false,
        nextRow: undefined,
      }));
      let rows: (Float32Array | undefined)[] = growing.map(() => parent.nextRow);
      for (;;) {
        const stepTokens: SequenceTokens[] = [];
        growing.forEach((thought, index) => {
          if (thought.ended) return;
          const chosen = chooseToken(rows[index]!, sampling, thought.random);
          thought.tokens.push(chosen.token);
          thought.logProbabilities.push(chosen.logProbability);
          tree.append(thought.node, chosen.token);
          stepTokens.push({ sequence: index, tokens: [chosen.token] });
          thought.stopped = stopTokens.has(chosen.token);
          // A thought whose path fills the model's context ends here, and can grow no further.
          thought.ended =
            thought.stopped ||
            thoughtEnd.has(chosen.token) ||
            thought.tokens.length >= maxTokens ||
            session.contextRoom(thought.node) === 0;
        });
        const evaluation = await session.evaluate();
        rows = growing.map((thought) => evaluation.row(thought.node));
        growing.forEach((thought, index) => {
          if (thought.ended && thought.nextRow === undefined) thought.nextRow = rows[index]!.slice();
        });
        yield {
          type: 'step',
          strategy: 'tree-of-thoughts',
          step: step++,
          stats: evaluation.stats,
          tokens: stepTokens,
        };
        if (growing.every((thought) => thought.ended)) break;
      }
      expansions++;
      const depth = parent.depth + 1;
      for (const thought of growing) {
        thoughts++;
        const pathTokens = [...parent.pathTokens, ...thought.tokens];
        const pathLogProbabilities = [...parent.pathLogProbabilities, ...thought.logProbabilities];
        const returned = await options.score({
          depth,
          tokens: thought.tokens,
          pathTokens,
          logProbability: thought.logProbabilities.reduce((total, value) => total + value, 0),
          stopped: thought.stopped,
        });
        const score = typeof returned === 'number' ? returned : returned.score;
        const done =
          thought.stopped ||
          depth >= maxDepth ||
          session.contextRoom(thought.node) === 0 ||
          (typeof returned === 'object' && returned.done === true);
        const scored = { depth, score, done, pathTokens, pathLogProbabilities };
        if (done) answers.push(scored);
        else frontier.push({ ...scored, node: thought.node, nextRow: thought.nextRow! });
      }
      frontier.sort((a, b) => b.score - a.score);
      frontier = frontier.slice(0, keep);
      session.pruneExcept(frontier.map((thought) => thought.node));
    }
    answers.sort((a, b) => b.score - a.score);
    const winner: ScoredThought | undefined = answers[0] ?? frontier[0];
    const bestTokens = winner?.pathTokens ?? [];
    const bestLogProbabilities = winner?.pathLogProbabilities ?? [];
    return {
      best: {
        tokens: [...bestTokens],
        logProbabilities: [...bestLogProbabilities],
        score: winner?.score ?? 0,
        finishReason:
          winner !== undefined && bestTokens.length > 0 && stopTokens.has(bestTokens[bestTokens.length - 1]!)
            ? 'stop'
            : session.promptLength + bestTokens.length >= session.contextLength
              ? 'context'
              : 'length',
      },
      answers,
      thoughts,
      expansions,
      stats: session.summary(),
      tree,
    };
  } finally {
    session.release();
  }
}
