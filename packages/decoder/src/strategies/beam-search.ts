import { InvalidArgumentError } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import type { TokenTree } from '@deft/tree';
import type { DecodeEvent, SequenceTokens } from '../engine/decode-events.js';
import type { DecodeStats } from '../engine/decode-stats.js';
import type { FinishReason, GeneratedSequence } from '../engine/generated-sequence.js';
import type { SessionOpener } from '../engine/session-opener.js';
import { type CommonDecodeOptions, resolveCommon } from './common-options.js';

/** Options of {@link beamSearch}. */
export interface BeamSearchOptions extends CommonDecodeOptions {
  /** Beams kept per step. */
  readonly width: number;
  /**
   * Exponent of the length normalisation: a finished hypothesis scores `sum(logProbabilities) / length^lengthPenalty`
   * (default 1; 0 ranks by the plain sum).
   */
  readonly lengthPenalty?: number;
  /**
   * `true`: stop as soon as `width` hypotheses finished. `false` (default): stop once no live beam can still
   * beat the worst finished hypothesis (its current normalised score is below it).
   */
  readonly earlyStopping?: boolean;
}

/** One beam candidate: extending beam `beam` with `token`. */
export interface BeamCandidate {
  readonly beam: number;
  readonly token: number;
  /** Sum of log-probabilities of the extended beam. */
  readonly score: number;
  readonly logProbability: number;
}

/** A live beam as the selection sees it. */
export interface BeamState {
  readonly tokens: readonly number[];
  readonly logProbabilities: readonly number[];
  /** Sum of `logProbabilities`. */
  readonly score: number;
}

/** What one selection step decided. */
export interface BeamSelection {
  /** The next live beams (at most `width`), best first. */
  readonly next: readonly BeamCandidate[];
  /** Candidates that ended with a stop token and rank among the `width` best. */
  readonly finished: readonly BeamCandidate[];
}

/**
 * One step of beam selection, shared by the tree implementation and any reference: every beam's `2 × width`
 * best extensions are ranked by summed log-probability (ties: the lower beam, then the lower token); a
 * stop-token candidate ranked among the first `width` becomes a finished hypothesis, the others are
 * dropped; the first `width` other candidates become the next beams.
 *
 * @param rows `[beams]` each beam's `[vocabSize]` log-probabilities of the next token
 * @example
 * ```ts
 * const { next, finished } = selectBeams(beams, rows, 4, new Set([eosId]));
 * ```
 */
export function selectBeams(
  beams: readonly BeamState[],
  rows: readonly Float32Array[],
  width: number,
  stopTokens: ReadonlySet<number>,
): BeamSelection {
  const candidates: BeamCandidate[] = [];
  const perBeam = Math.min(2 * width, rows[0]?.length ?? 0);
  beams.forEach((beam, index) => {
    const row = rows[index]!;
    const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
    for (let rank = 0; rank < perBeam; rank++) {
      const token = order[rank]!;
      candidates.push({ beam: index, token, score: beam.score + row[token]!, logProbability: row[token]! });
    }
  });
  candidates.sort((a, b) => b.score - a.score || a.beam - b.beam || a.token - b.token);
  const next: BeamCandidate[] = [];
  const finished: BeamCandidate[] = [];
  for (const [rank, candidate] of candidates.entries()) {
    if (stopTokens.has(candidate.token)) {
      if (rank < width) finished.push(candidate);
      continue;
    }
    next.push(candidate);
    if (next.length === width) break;
  }
  return { next, finished };
}

/** Normalised score of a hypothesis: `sum / length^lengthPenalty`. */
export function beamHypothesisScore(sum: number, length: number, lengthPenalty: number): number {
  return sum / Math.max(1, length) ** lengthPenalty;
}

/** Result of {@link beamSearch}. */
export interface BeamSearchResult {
  /** The best `width` hypotheses, best first; `score` is the normalised score. */
  readonly sequences: readonly GeneratedSequence[];
  readonly stats: DecodeStats;
  readonly tree: TokenTree;
}

interface LiveBeam extends BeamState {
  node: number;
}

/**
 * Beam search over the token tree: the live beams are the tree's leaves; a beam extended once grows in
 * place, a beam extended `k > 1` times forks into `k` children, and a beam not extended is pruned at once
 * together with every ancestor no live beam still needs, so its pages go back to the pool. Each step is
 * one forward pass with one query per beam, the shared prefixes' KV read once under a DeFT plan.
 *
 * @throws InvalidArgumentError for bad options.
 * @example
 * ```ts
 * const result = await runStrategy(beamSearch(engine, { prompt, width: 4, maxTokens: 30, stopTokens: [eos], lengthPenalty: 1 }));
 * result.sequences[0].tokens;
 * ```
 */
export async function* beamSearch(
  engine: SessionOpener,
  options: BeamSearchOptions,
): AsyncGenerator<DecodeEvent, BeamSearchResult, undefined> {
  const { maxTokens, stopTokens } = resolveCommon(options);
  const width = assertInteger('width', options.width, 1);
  const lengthPenalty = options.lengthPenalty ?? 1;
  if (!Number.isFinite(lengthPenalty)) {
    throw new InvalidArgumentError('lengthPenalty must be a finite number', {
      argument: 'lengthPenalty',
      expected: 'finite number',
      actual: lengthPenalty,
    });
  }
  const earlyStopping = options.earlyStopping ?? false;
  const session = engine.openSession(options.prompt);
  const tree = session.tree;
  const hypotheses: GeneratedSequence[] = [];
  const addHypothesis = (
    tokens: number[],
    logProbabilities: number[],
    sum: number,
    finishReason: FinishReason,
  ) => {
    hypotheses.push({
      tokens,
      logProbabilities,
      score: beamHypothesisScore(sum, tokens.length, lengthPenalty),
      finishReason,
    });
    hypotheses.sort((a, b) => b.score - a.score);
    if (hypotheses.length > width) hypotheses.length = width;
  };
  try {
    let beams: LiveBeam[] = [{ node: session.root, tokens: [], logProbabilities: [], score: 0 }];
    for (let step = 0; ; step++) {
      const evaluation = await session.evaluate();
      const rows = beams.map((beam) => evaluation.row(beam.node)!);
      const selection = selectBeams(beams, rows, width, stopTokens);
      for (const candidate of selection.finished) {
        const parent = beams[candidate.beam]!;
        addHypothesis(
          [...parent.tokens, candidate.token],
          [...parent.logProbabilities, candidate.logProbability],
          candidate.score,
          'stop',
        );
      }
      const next = selection.next;
      const length = beams[0]!.tokens.length + 1;
      // Every beam has the same length: prompt + length tokens; none may follow once they fill the context.
      const limit: FinishReason | undefined =
        length >= maxTokens
          ? 'length'
          : session.promptLength + length >= session.contextLength
            ? 'context'
            : undefined;
      let done = next.length === 0 || limit !== undefined;
      if (!done && hypotheses.length >= width) {
        const worst = hypotheses[hypotheses.length - 1]!.score;
        done = earlyStopping || beamHypothesisScore(next[0]!.score, length, lengthPenalty) <= worst;
      }
      const tokens: SequenceTokens[] = next.map((candidate, index) => ({
        sequence: index,
        tokens: [candidate.token],
      }));
      if (done) {
        if (limit !== undefined) {
          for (const candidate of next) {
            const parent = beams[candidate.beam]!;
            addHypothesis(
              [...parent.tokens, candidate.token],
              [...parent.logProbabilities, candidate.logProbability],
              candidate.score,
              limit,
            );
          }
        }
        yield { type: 'step', strategy: 'beam', step, stats: evaluation.stats, tokens };
        break;
      }
      // Grow the tree: one child per extension of a beam, in place when a beam is extended once.
      const extensions = new Map<number, BeamCandidate[]>();
      for (const candidate of next) {
        const list = extensions.get(candidate.beam) ?? [];
        list.push(candidate);
        extensions.set(candidate.beam, list);
      }
      const nextBeams: LiveBeam[] = new Array(next.length);
      for (const [beamIndex, list] of extensions) {
        const parent = beams[beamIndex]!;
        const nodes = list.length === 1 ? [parent.node] : tree.fork(parent.node, list.length);
        list.forEach((candidate, index) => {
          tree.append(nodes[index]!, candidate.token);
          nextBeams[next.indexOf(candidate)] = {
            node: nodes[index]!,
            tokens: [...parent.tokens, candidate.token],
            logProbabilities: [...parent.logProbabilities, candidate.logProbability],
            score: candidate.score,
          };
        });
      }
      beams = nextBeams;
      session.pruneExcept(beams.map((beam) => beam.node));
      yield { type: 'step', strategy: 'beam', step, stats: evaluation.stats, tokens };
    }
    return { sequences: [...hypotheses], stats: session.summary(), tree };
  } finally {
    session.release();
  }
}
