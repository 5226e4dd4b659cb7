import type { LlamaModel, Tokenizer } from '@deft/model';
import {
  hasStories260K as hasStories,
  loadStories260K as loadStories,
  stories260KSkipReason as storiesSkipReason,
} from '@deft/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecodingEngine } from '../engine/decoding-engine.js';
import { beamHypothesisScore, beamSearch } from './beam-search.js';
import { bestOfN } from './best-of-n.js';
import { fewShot } from './few-shot.js';
import { generate } from './generate.js';
import { runStrategy } from './run-strategy.js';
import { speculativeDecode } from './speculative-decode.js';
import { treeOfThoughts } from './tree-of-thoughts.js';

if (!hasStories) console.warn(`skipped: ${storiesSkipReason}`);

describe.skipIf(!hasStories)('strategies on stories260K', () => {
  let model: LlamaModel;
  let tokenizer: Tokenizer;
  let golden: { promptIdsWithBos: number[]; greedyNext30: number[] };
  let engine: DecodingEngine;
  const eos = 2;

  beforeAll(async () => {
    ({ model, tokenizer, golden } = await loadStories());
    engine = DecodingEngine.create(model, { numPages: 256, pageSize: 16 });
  });
  afterAll(() => {
    engine.dispose();
    model.dispose();
    model.backend.dispose();
  });

  it('greedy generation reproduces the golden continuation and streams one token per step', async () => {
    const streamed: number[] = [];
    const result = await runStrategy(
      generate(engine, { prompt: golden.promptIdsWithBos, maxTokens: 30 }),
      (event) => {
        for (const entry of event.tokens) streamed.push(...entry.tokens);
      },
    );
    expect(result.sequence.tokens).toEqual(golden.greedyNext30);
    expect(streamed).toEqual(golden.greedyNext30);
    expect(result.sequence.finishReason).toBe('length');
    expect(result.stats.forwardPasses).toBe(30);
    expect(result.stats.queries).toBe(golden.promptIdsWithBos.length + 29);
    expect(engine.pool.usedCount).toBe(0);
  });

  it('speculative decoding reproduces greedy decoding token for token for 200 tokens', async () => {
    const prompt = tokenizer.encode('Once upon a time, there was a little girl named Lily.');
    const greedy = await runStrategy(generate(engine, { prompt, maxTokens: 200 }));
    const speculative = await runStrategy(speculativeDecode(engine, { prompt, maxTokens: 200 }));
    expect(speculative.sequence.tokens).toEqual(greedy.sequence.tokens);
    speculative.sequence.logProbabilities.forEach((value, index) => {
      expect(value).toBeCloseTo(greedy.sequence.logProbabilities[index]!, 4);
    });
    const { acceptance } = speculative;
    console.log(
      `speculative decoding, 200 tokens: ${acceptance.accepted}/${acceptance.proposed} draft tokens accepted (rate ${acceptance.rate.toFixed(3)}), ` +
        `${acceptance.tokensPerPass.toFixed(2)} tokens per verification pass, ${speculative.stats.forwardPasses} passes vs ${greedy.stats.forwardPasses} greedy`,
    );
    expect(acceptance.accepted).toBeGreaterThan(0);
    expect(speculative.stats.forwardPasses).toBeLessThan(greedy.stats.forwardPasses);
    expect(engine.pool.usedCount).toBe(0);
  });

  it('beam search over the tree matches beams kept as separate sequences and recomputed in full', async () => {
    const prompt = golden.promptIdsWithBos;
    const width = 3;
    const maxTokens = 10;
    const lengthPenalty = 0.7;
    const stopTokens = [eos, 432]; // stop at EOS or ',' so hypotheses of different lengths finish
    const tree = await runStrategy(
      beamSearch(engine, { prompt, width, maxTokens, lengthPenalty, stopTokens }),
    );

    // The plain implementation: every beam is its own sequence, recomputed from scratch at every step.
    const fullLogProbabilities = async (tokens: number[]): Promise<Float32Array> => {
      const session = engine.openSession(tokens);
      try {
        return (await session.evaluate()).row(session.tree.root)!.slice();
      } finally {
        session.release();
      }
    };
    interface PlainBeam {
      tokens: number[];
      sum: number;
    }
    let beams: PlainBeam[] = [{ tokens: [], sum: 0 }];
    const finished: { tokens: number[]; score: number }[] = [];
    const stop = new Set(stopTokens);
    for (;;) {
      const candidates: { beam: number; token: number; sum: number }[] = [];
      for (const [index, beam] of beams.entries()) {
        const row = await fullLogProbabilities([...prompt, ...beam.tokens]);
        const order = Array.from(row.keys())
          .sort((a, b) => row[b]! - row[a]! || a - b)
          .slice(0, 2 * width);
        for (const token of order) candidates.push({ beam: index, token, sum: beam.sum + row[token]! });
      }
      candidates.sort((a, b) => b.sum - a.sum || a.beam - b.beam || a.token - b.token);
      const next: PlainBeam[] = [];
      for (const [rank, candidate] of candidates.entries()) {
        const tokens = [...beams[candidate.beam]!.tokens, candidate.token];
        if (stop.has(candidate.token)) {
          if (rank < width)
            finished.push({
              tokens,
              score: beamHypothesisScore(candidate.sum, tokens.length, lengthPenalty),
            });
          continue;
        }
        next.push({ tokens, sum: candidate.sum });
        if (next.length === width) break;
      }
      finished.sort((a, b) => b.score - a.score);
      finished.length = Math.min(finished.length, width);
      const length = next[0]!.tokens.length;
      let done = length >= maxTokens;
      if (!done && finished.length >= width)
        done = beamHypothesisScore(next[0]!.sum, length, lengthPenalty) <= finished.at(-1)!.score;
      if (done) {
        if (length >= maxTokens) {
          for (const beam of next)
            finished.push({
              tokens: beam.tokens,
              score: beamHypothesisScore(beam.sum, length, lengthPenalty),
            });
          finished.sort((a, b) => b.score - a.score);
          finished.length = Math.min(finished.length, width);
        }
        break;
      }
      beams = next;
    }
    expect(tree.sequences.map((sequence) => sequence.tokens)).toEqual(
      finished.map((hypothesis) => hypothesis.tokens),
    );
    tree.sequences.forEach((sequence, index) => {
      expect(Math.abs(sequence.score - finished[index]!.score)).toBeLessThan(1e-4);
    });
    expect(tree.sequences.some((sequence) => sequence.finishReason === 'stop')).toBe(true);
    expect(tree.stats.kvBytesRead).toBeLessThan(tree.stats.sequenceKvBytes);
    expect(engine.pool.usedCount).toBe(0);
  });

  it('best-of-N with a fixed seed is reproducible and a different seed differs', async () => {
    const options = {
      prompt: golden.promptIdsWithBos,
      n: 4,
      maxTokens: 20,
      stopTokens: [eos],
      sampling: { temperature: 1, topK: 40, topP: 0.95, seed: 11 },
    };
    const first = await runStrategy(bestOfN(engine, options));
    const second = await runStrategy(bestOfN(engine, options));
    expect(second.sequences).toEqual(first.sequences);
    expect(second.branchIndices).toEqual(first.branchIndices);
    const other = await runStrategy(
      bestOfN(engine, { ...options, sampling: { ...options.sampling, seed: 12 } }),
    );
    expect(other.sequences.map((sequence) => sequence.tokens)).not.toEqual(
      first.sequences.map((sequence) => sequence.tokens),
    );
    expect(first.best.score).toBe(Math.max(...first.sequences.map((sequence) => sequence.score)));
    expect(first.stats.kvBytesRead).toBeLessThan(first.stats.sequenceKvBytes);
    expect(first.stats.steps[1]!.pagesShared).toBeGreaterThan(0);
    expect(engine.pool.usedCount).toBe(0);
  });

  it('few-shot branching prefills one prompt and many suffixes and matches separate greedy runs', async () => {
    const prompt = tokenizer.encode(
      'Once upon a time, there was a little dog. The dog liked to run. One day,',
    );
    const suffixes = [' Tim', ' the sun', ' a big red ball was'].map((text) =>
      tokenizer.encode(text, { bos: false }),
    );
    const result = await runStrategy(
      fewShot(engine, { prompt, branches: suffixes, maxTokens: 12, stopTokens: [eos] }),
    );
    expect(result.stats.steps[0]!.queries).toBe(prompt.length + suffixes.flat().length);
    for (const [index, suffix] of suffixes.entries()) {
      const alone = await runStrategy(
        generate(engine, { prompt: [...prompt, ...suffix], maxTokens: 12, stopTokens: [eos] }),
      );
      expect(result.sequences[index]!.tokens).toEqual(alone.sequence.tokens);
    }
    expect(engine.pool.usedCount).toBe(0);
  });

  it('tree of thoughts expands, scores, keeps the best and backtracks', async () => {
    const period = tokenizer.encode('.', { bos: false }).at(-1)!;
    const scored: { depth: number; score: number }[] = [];
    let firstExpansion = true;
    const result = await runStrategy(
      treeOfThoughts(engine, {
        prompt: golden.promptIdsWithBos,
        branching: 3,
        keep: 2,
        maxDepth: 3,
        maxExpansions: 5,
        maxTokens: 8,
        thoughtEnd: [period],
        stopTokens: [eos],
        sampling: { temperature: 1, seed: 3 },
        score: (thought) => {
          // Depth-1 thoughts score 1..3; the first deeper expansion scores badly, so the search must backtrack.
          const score =
            thought.depth === 1
              ? scored.length + 1
              : firstExpansion && thought.depth === 2
                ? -10
                : thought.logProbability / thought.tokens.length;
          scored.push({ depth: thought.depth, score });
          return score;
        },
      }),
      () => {
        if (scored.some((entry) => entry.depth === 2)) firstExpansion = false;
      },
    );
    expect(result.expansions).toBe(5);
    expect(result.thoughts).toBe(15);
    const depths = scored.map((entry) => entry.depth);
    // After the poor depth-2 expansion, the next expansion goes back to the other kept depth-1 thought.
    expect(depths.slice(0, 9)).toEqual([1, 1, 1, 2, 2, 2, 2, 2, 2]);
    expect(result.best.tokens.length).toBeGreaterThan(0);
    expect(result.stats.peakTreeNodes).toBeLessThanOrEqual(1 + 3 * 5);
    expect(engine.pool.usedCount).toBe(0);
  });

  it('gives every page back when a consumer stops early', async () => {
    const strategy = beamSearch(engine, { prompt: golden.promptIdsWithBos, width: 4, maxTokens: 50 });
    await strategy.next();
    await strategy.next();
    expect(engine.pool.usedCount).toBeGreaterThan(0);
    await strategy.return(undefined as never);
    expect(engine.pool.usedCount).toBe(0);
  });
});
