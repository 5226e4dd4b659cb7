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
import {
  advanceBranch,
  type Branch,
  type BranchRules,
  branchSequence,
  decodeBranches,
} from './decode-branches.js';

/** Options of {@link bestOfN}. */
export interface BestOfNOptions extends CommonDecodeOptions {
  /** Samples drawn from the shared prompt. */
  readonly n: number;
  /**
   * Sampling of every branch (default temperature 1, seed 0); branch `i` uses stream `i` of the seed, so
   * results are reproducible.
   */
  readonly sampling?: SamplingOptions;
  /** Ranking: `mean` log-probability per token (default) or `sum`. */
  readonly score?: 'sum' | 'mean';
}

/** Result of {@link bestOfN}. */
export interface BestOfNResult {
  /** All `n` samples, best first (ties keep branch order). */
  readonly sequences: readonly GeneratedSequence[];
  /** Branch index of each entry of `sequences`. */
  readonly branchIndices: readonly number[];
  readonly best: GeneratedSequence;
  readonly stats: DecodeStats;
  readonly tree: TokenTree;
}

/**
 * Best-of-N / parallel sampling: the prompt is prefilled once and shared by reference by `n` branches
 * that decode together (one query per live branch per pass, the prompt's KV read once per pass under a
 * DeFT plan). A finished branch is pruned at once and its pages freed.
 *
 * @throws InvalidArgumentError for bad options.
 * @example
 * ```ts
 * const { best } = await runStrategy(bestOfN(engine, { prompt, n: 8, maxTokens: 40, sampling: { temperature: 0.8, seed: 7 } }));
 * ```
 */
export async function* bestOfN(
  engine: SessionOpener,
  options: BestOfNOptions,
): AsyncGenerator<DecodeEvent, BestOfNResult, undefined> {
  const { maxTokens, stopTokens } = resolveCommon(options);
  const count = assertInteger('n', options.n, 1);
  const sampling = resolveSampling({ temperature: 1, ...options.sampling });
  const rules: BranchRules = { strategy: 'best-of-n', maxTokens, stopTokens, sampling, pruneFinished: true };
  const session = engine.openSession(options.prompt);
  try {
    const prefill = await session.evaluate();
    const promptRow = prefill.row(session.root)!;
    const branches: Branch[] = Array.from({ length: count }, (_, index) => ({
      index,
      node: -1,
      tokens: [],
      logProbabilities: [],
      random: new SeededRandom(sampling.seed, index),
      finishReason: undefined,
    }));
    const firstTokens = branches.map((branch) => chooseToken(promptRow, sampling, branch.random));
    const children = session.tree.fork(session.root, count);
    const tokens: SequenceTokens[] = [];
    branches.forEach((branch, index) => {
      branch.node = children[index]!;
      const chosen = firstTokens[index]!;
      advanceBranch(session, branch, chosen.token, chosen.logProbability, rules);
      tokens.push({ sequence: index, tokens: [chosen.token] });
    });
    yield { type: 'step', strategy: 'best-of-n', step: 0, stats: prefill.stats, tokens };
    yield* decodeBranches(session, branches, rules, 1);
    const ranked = branches
      .map((branch) => ({ index: branch.index, sequence: branchSequence(branch, options.score ?? 'mean') }))
      .sort((a, b) => b.sequence.score - a.sequence.score || a.index - b.index);
    return {
      sequences: ranked.map((entry) => entry.sequence),
      branchIndices: ranked.map((entry) => entry.index),
      best: ranked[0]!.sequence,
      stats: session.summary(),
      tree: session.tree,
    };
  } finally {
    session.release();
  }
}
