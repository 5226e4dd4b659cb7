import { InvalidArgumentError } from '@deft/core';
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

/** Options of {@link fewShot}. */
export interface FewShotOptions extends CommonDecodeOptions {
  /** One suffix per branch (e.g. a question after shared few-shot examples), each at least one token. */
  readonly branches: readonly (readonly number[])[];
  /** Greedy when omitted; branch `i` samples with stream `i` of the seed. */
  readonly sampling?: SamplingOptions;
}

/** Result of {@link fewShot}. */
export interface FewShotResult {
  /** One continuation per branch, in branch order. */
  readonly sequences: readonly GeneratedSequence[];
  readonly stats: DecodeStats;
  readonly tree: TokenTree;
}

/**
 * Few-shot branching: one long prompt shared by many branches. The prompt and every branch's suffix are
 * prefilled in a single pass (causal multi-token queries over the tree), then all branches decode
 * together, each pass reading the prompt's KV once for all of them.
 *
 * @throws InvalidArgumentError for no branches or an empty suffix.
 * @example
 * ```ts
 * const result = await runStrategy(fewShot(engine, { prompt: examples, branches: questions, maxTokens: 20 }));
 * ```
 */
export async function* fewShot(
  engine: SessionOpener,
  options: FewShotOptions,
): AsyncGenerator<DecodeEvent, FewShotResult, undefined> {
  const { maxTokens, stopTokens } = resolveCommon(options);
  const suffixes = options.branches;
  if (!Array.isArray(suffixes) || suffixes.length === 0 || suffixes.some((suffix) => suffix.length === 0)) {
    throw new InvalidArgumentError('branches must be a non-empty list of non-empty token arrays', {
      argument: 'branches',
      expected: 'number[][] with every suffix non-empty',
      actual: suffixes,
    });
  }
  const sampling = resolveSampling(options.sampling);
  const rules: BranchRules = { strategy: 'few-shot', maxTokens, stopTokens, sampling, pruneFinished: true };
  const session = engine.openSession(options.prompt);
  suffixes.forEach((suffix, index) => {
    if (session.promptLength + suffix.length >= session.contextLength) {
      session.release();
      throw new InvalidArgumentError(
        `the prompt and branches[${index}] hold ${session.promptLength + suffix.length} tokens, but the model's ` +
          `context length is ${session.contextLength}; shorten them to at most ${session.contextLength - 1} tokens together`,
        {
          argument: `branches[${index}]`,
          expected: `<= ${session.contextLength - 1 - session.promptLength} tokens`,
          actual: suffix.length,
        },
      );
    }
  });
  try {
    const children = session.tree.fork(session.root, suffixes.length);
    const branches: Branch[] = suffixes.map((suffix, index) => {
      session.tree.append(children[index]!, suffix);
      return {
        index,
        node: children[index]!,
        tokens: [],
        logProbabilities: [],
        random: new SeededRandom(sampling.seed, index),
        finishReason: undefined,
      };
    });
    const prefill = await session.evaluate();
    const tokens: SequenceTokens[] = [];
    for (const branch of branches) {
      const chosen = chooseToken(prefill.row(branch.node)!, sampling, branch.random);
      advanceBranch(session, branch, chosen.token, chosen.logProbability, rules);
      tokens.push({ sequence: branch.index, tokens: [chosen.token] });
    }
    yield { type: 'step', strategy: 'few-shot', step: 0, stats: prefill.stats, tokens };
    yield* decodeBranches(session, branches, rules, 1);
    return {
      sequences: branches.map((branch) => branchSequence(branch)),
      stats: session.summary(),
      tree: session.tree,
    };
  } finally {
    session.release();
  }
}
