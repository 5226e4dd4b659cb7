import type { DecodeEvent, SequenceTokens, StrategyName } from '../engine/decode-events.js';
import type { DecodingSession } from '../engine/decoding-session.js';
import type { FinishReason, GeneratedSequence } from '../engine/generated-sequence.js';
import { chooseToken } from '../sampling/choose-token.js';
import type { ResolvedSampling } from '../sampling/sampling-options.js';
import type { SeededRandom } from '../sampling/seeded-random.js';

/** A sequence decoded independently of its siblings (best-of-N, few-shot, a single sequence). */
export interface Branch {
  readonly index: number;
  /** Leaf holding the branch's newest token. */
  node: number;
  readonly tokens: number[];
  readonly logProbabilities: number[];
  readonly random: SeededRandom;
  finishReason: FinishReason | undefined;
}

/** How branches advance. */
export interface BranchRules {
  readonly strategy: StrategyName;
  readonly maxTokens: number;
  readonly stopTokens: ReadonlySet<number>;
  readonly sampling: ResolvedSampling;
  /** Prune a finished branch's node right away (its pages go back to the pool). */
  readonly pruneFinished: boolean;
}

/**
 * Records a chosen token for a branch and, unless it finished, appends it to the branch's leaf (so the
 * next pass computes it).
 */
export function advanceBranch(
  session: DecodingSession,
  branch: Branch,
  token: number,
  logProbability: number,
  rules: BranchRules,
): void {
  branch.tokens.push(token);
  branch.logProbabilities.push(logProbability);
  if (rules.stopTokens.has(token)) branch.finishReason = 'stop';
  else if (branch.tokens.length >= rules.maxTokens) branch.finishReason = 'length';
  // The branch's sequence is its path through `node` plus this token: none may follow once it fills the context.
  else if (session.contextRoom(branch.node) <= 1) branch.finishReason = 'context';
  if (branch.finishReason === undefined) {
    session.tree.append(branch.node, token);
  } else if (rules.pruneFinished && branch.node !== session.root && session.tree.has(branch.node)) {
    session.tree.prune(branch.node);
  }
}

/**
 * Decodes every unfinished branch one token per pass until all finish. Each branch's newest token must
 * already be appended to its leaf. Yields one event per pass, numbered from `firstStep`.
 */
export async function* decodeBranches(
  session: DecodingSession,
  branches: readonly Branch[],
  rules: BranchRules,
  firstStep: number,
): AsyncGenerator<DecodeEvent, void, undefined> {
  let step = firstStep;
  while (branches.some((branch) => branch.finishReason === undefined)) {
    const evaluation = await session.evaluate();
    const tokens: SequenceTokens[] = [];
    for (const branch of branches) {
      if (branch.finishReason !== undefined) continue;
      const chosen = chooseToken(evaluation.row(branch.node)!, rules.sampling, branch.random);
      advanceBranch(session, branch, chosen.token, chosen.logProbability, rules);
      tokens.push({ sequence: branch.index, tokens: [chosen.token] });
    }
    yield { type: 'step', strategy: rules.strategy, step: step++, stats: evaluation.stats, tokens };
  }
}

/** A branch's result, scored by the sum (or mean) of its log-probabilities. */
export function branchSequence(branch: Branch, score: 'sum' | 'mean' = 'sum'): GeneratedSequence {
  const sum = branch.logProbabilities.reduce((total, value) => total + value, 0);
  return {
    tokens: [...branch.tokens],
    logProbabilities: [...branch.logProbabilities],
    score: score === 'mean' ? sum / Math.max(1, branch.tokens.length) : sum,
    finishReason: branch.finishReason ?? 'length',
  };
}
