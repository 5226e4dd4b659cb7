import type { TokenTree } from '@deft/tree';
import type { DecodeEvent } from '../engine/decode-events.js';
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

/** Options of {@link generate}. */
export interface GenerateOptions extends CommonDecodeOptions {
  /** Greedy when omitted or at temperature 0. */
  readonly sampling?: SamplingOptions;
}

/** Result of {@link generate}. */
export interface GenerateResult {
  readonly sequence: GeneratedSequence;
  readonly stats: DecodeStats;
  /** The session's tree (one node: the prompt and the generated tokens); its pages are released. */
  readonly tree: TokenTree;
}

/**
 * Greedy decoding or sampling of one sequence: the prompt is prefilled in one pass, then one token per
 * pass. Yields a {@link StepEvent} per pass carrying the new token (stream it); resolves to the sequence.
 * The session's pages are released when the generator finishes or is closed.
 *
 * @throws InvalidArgumentError for bad options or prompt ids.
 * @example
 * ```ts
 * for await (const event of generate(engine, { prompt, maxTokens: 50, stopTokens: [tokenizer.eosId] })) {
 *   process.stdout.write(stream.push(event.tokens[0]!.tokens[0]!));
 * }
 * ```
 */
export async function* generate(
  engine: SessionOpener,
  options: GenerateOptions,
): AsyncGenerator<DecodeEvent, GenerateResult, undefined> {
  const { maxTokens, stopTokens } = resolveCommon(options);
  const sampling = resolveSampling(options.sampling);
  const rules: BranchRules = {
    strategy: sampling.temperature === 0 ? 'greedy' : 'sample',
    maxTokens,
    stopTokens,
    sampling,
    pruneFinished: false,
  };
  const session = engine.openSession(options.prompt);
  try {
    const branch: Branch = {
      index: 0,
      node: session.root,
      tokens: [],
      logProbabilities: [],
      random: new SeededRandom(sampling.seed, 0),
      finishReason: undefined,
    };
    const prefill = await session.evaluate();
    const chosen = chooseToken(prefill.row(branch.node)!, sampling, branch.random);
    advanceBranch(session, branch, chosen.token, chosen.logProbability, rules);
    yield {
      type: 'step',
      strategy: rules.strategy,
      step: 0,
      stats: prefill.stats,
      tokens: [{ sequence: 0, tokens: [chosen.token] }],
    };
    yield* decodeBranches(session, [branch], rules, 1);
    return { sequence: branchSequence(branch), stats: session.summary(), tree: session.tree };
  } finally {
    session.release();
  }
}
