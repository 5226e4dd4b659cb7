import type { LlamaModel, Tokenizer } from '@deft/model';
import {
  hasStories260K as hasStories,
  loadStories260K as loadStories,
  stories260KSkipReason as storiesSkipReason,
  tinyModel,
} from '@deft/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DraftNode } from '../draft/draft-tree.js';
import { DecodingEngine } from '../engine/decoding-engine.js';
import { samplingDistribution } from '../sampling/sampling-distribution.js';
import { resolveSampling, type SamplingOptions } from '../sampling/sampling-options.js';
import { SeededRandom } from '../sampling/seeded-random.js';
import { type DraftAcceptanceRule, speculativeSample } from '../sampling/speculative-sample.js';
import { generate } from './generate.js';
import { runStrategy } from './run-strategy.js';
import { speculativeDecode, speculativeDecodeWithRule } from './speculative-decode.js';

// --- Pearson's chi-square goodness of fit, with the p-value from the regularized incomplete gamma. ---

/** log Γ(x) for x a positive multiple of 1/2 (the chi-square test's only arguments): Γ(x + 1) = x Γ(x). */
function logGamma(x: number): number {
  let value = Number.isInteger(x) ? 0 : 0.5 * Math.log(Math.PI); // Γ(1) = 1, Γ(1/2) = √π
  for (let base = Number.isInteger(x) ? 1 : 0.5; base < x; base++) value += Math.log(base);
  return value;
}

/** Upper regularized incomplete gamma Q(a, x) (series below a + 1, continued fraction above). */
function upperGamma(a: number, x: number): number {
  if (x <= 0) return 1;
  const logPrefix = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(logPrefix);
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let n = 1; n < 1000; n++) {
    const an = -n * (n - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.exp(logPrefix) * h;
}

/**
 * p-value of observed counts against expected probabilities (categories expected fewer than 5 times are
 * pooled into one).
 */
function chiSquarePValue(
  observed: ReadonlyMap<string, number>,
  expected: ReadonlyMap<string, number>,
): number {
  let runs = 0;
  for (const count of observed.values()) runs += count;
  let statistic = 0;
  let categories = 0;
  let pooledObserved = 0;
  let pooledExpected = 0;
  for (const key of new Set([...observed.keys(), ...expected.keys()])) {
    const expectedCount = (expected.get(key) ?? 0) * runs;
    const observedCount = observed.get(key) ?? 0;
    if (expectedCount < 5) {
      pooledObserved += observedCount;
      pooledExpected += expectedCount;
      continue;
    }
    statistic += (observedCount - expectedCount) ** 2 / expectedCount;
    categories++;
  }
  if (pooledExpected > 0 || pooledObserved > 0) {
    // An outcome the model cannot produce fails the test outright.
    if (pooledExpected === 0) return 0;
    statistic += (pooledObserved - pooledExpected) ** 2 / pooledExpected;
    categories++;
  }
  return upperGamma((categories - 1) / 2, statistic / 2);
}

function tally(outcomes: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const outcome of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
  return counts;
}

/** The classic mistake: after a rejection, sample the next child's test and the fallback from the target, not the residual. */
const biasedRule: DraftAcceptanceRule = (target, children, random) => {
  for (const [index, token] of children.entries()) {
    if (random.next() < (target[token] ?? 0)) return { child: index, token };
  }
  let draw = random.next();
  for (let token = 0; token < target.length; token++) {
    draw -= target[token]!;
    if (draw < 0) return { child: -1, token };
  }
  return { child: -1, token: target.length - 1 };
};

describe('speculative sampling at one node', () => {
  const target = Float64Array.from([0.4, 0.25, 0.2, 0.1, 0.05, 0]);
  const expected = new Map(Array.from(target, (probability, token) => [String(token), probability]));
  const draws = (rule: DraftAcceptanceRule, children: readonly number[]): Map<string, number> => {
    const random = new SeededRandom(7, children.length);
    return tally(Array.from({ length: 20000 }, () => String(rule(target, children, random).token)));
  };

  it('emits the target distribution for any children, and the chi-square test catches a biased rule', () => {
    for (const children of [[], [0], [3, 1], [5, 4, 4, 0], [1, 2, 3, 4, 0]]) {
      expect(chiSquarePValue(draws(speculativeSample, children), expected)).toBeGreaterThan(1e-3);
    }
    expect(chiSquarePValue(draws(biasedRule, [3, 1]), expected)).toBeLessThan(1e-6);
    expect(chiSquarePValue(draws(biasedRule, [1, 2, 3, 4, 0]), expected)).toBeLessThan(1e-6);
  });

  it('accepts a child exactly as often as the target mass the children cover', () => {
    const random = new SeededRandom(3);
    let accepted = 0;
    for (let run = 0; run < 20000; run++)
      if (speculativeSample(target, [1, 3], random).child >= 0) accepted++;
    expect(Math.abs(accepted / 20000 - 0.35)).toBeLessThan(0.015);
  });

  it('is greedy on a point mass: the argmax child or the argmax itself, with no random numbers', () => {
    const point = samplingDistribution(Float32Array.from([0.1, 0.7, 0.7, 0.2], Math.log), resolveSampling());
    expect(Array.from(point)).toEqual([0, 1, 0, 0]);
    const random = new SeededRandom(1);
    expect(speculativeSample(point, [2, 1], random)).toEqual({ child: 1, token: 1 });
    expect(speculativeSample(point, [3], random)).toEqual({ child: -1, token: 1 });
    expect(random.next()).toBe(new SeededRandom(1).next());
  });

  it('samplingDistribution is the distribution chooseToken samples from (temperature, top-k, top-p)', () => {
    const row = Float32Array.from([0.5, 0.3, 0.15, 0.05], Math.log);
    const close = (options: SamplingOptions, probabilities: number[]) =>
      Array.from(samplingDistribution(row, resolveSampling(options))).forEach((value, index) => {
        expect(value).toBeCloseTo(probabilities[index]!, 6);
      });
    close({ temperature: 1 }, [0.5, 0.3, 0.15, 0.05]);
    close({ temperature: 1, topK: 2 }, [0.625, 0.375, 0, 0]);
    close({ temperature: 1, topP: 0.8 }, [0.625, 0.375, 0, 0]);
  });
});

/** The probabilities of every continuation of `length` tokens under sampling, from the kept tokens' tree. */
async function exactContinuations(
  engine: DecodingEngine,
  prompt: readonly number[],
  length: number,
  options: SamplingOptions,
): Promise<{ probabilities: Map<string, number>; next: Map<string, number[]> }> {
  const sampling = resolveSampling(options);
  const probabilities = new Map<string, number>();
  const next = new Map<string, number[]>(); // prefix → kept tokens, most likely first
  const visit = async (prefix: number[], probability: number): Promise<void> => {
    if (prefix.length === length) {
      probabilities.set(prefix.join(','), probability);
      return;
    }
    const session = engine.openSession([...prompt, ...prefix]);
    let distribution: Float64Array;
    try {
      distribution = samplingDistribution((await session.evaluate()).row(session.root)!, sampling);
    } finally {
      session.release();
    }
    const kept = Array.from(distribution.keys())
      .filter((token) => distribution[token]! > 0)
      .sort((a, b) => distribution[b]! - distribution[a]!);
    next.set(prefix.join(','), kept);
    for (const token of kept) await visit([...prefix, token], probability * distribution[token]!);
  };
  await visit([], 1);
  return { probabilities, next };
}

/**
 * A draft that exercises every case of verification: below each generated prefix, the most likely kept
 * token first, then a token sampling never picks (rejected with certainty), then the second most likely
 * (decided on the residual), each with the same shape below it.
 */
function testDraft(
  prompt: readonly number[],
  next: ReadonlyMap<string, number[]>,
  depth: number,
  outside: number,
) {
  const build = (prefix: number[], remaining: number): DraftNode[] => {
    const kept = next.get(prefix.join(','));
    if (remaining === 0 || kept === undefined) return [];
    const order = [kept[0], outside, kept[1]].filter((token): token is number => token !== undefined);
    return order.map((token) => ({ token, children: build([...prefix, token], remaining - 1) }));
  };
  return (context: readonly number[]) => build(context.slice(prompt.length), depth);
}

async function continuationTest(
  engine: DecodingEngine,
  prompt: readonly number[],
  options: { sampling: SamplingOptions; length: number; runs: number; outside: number; plain: boolean },
): Promise<{ exact: number; biased: number; plain: number | undefined; tokensPerPass: number }> {
  const { sampling, length, runs, outside } = options;
  const { probabilities, next } = await exactContinuations(engine, prompt, length, sampling);
  const draft = testDraft(prompt, next, length - 1, outside);
  const outcomes = async (rule: DraftAcceptanceRule | 'plain') => {
    const keys: string[] = [];
    let tokensPerPass = 0;
    for (let seed = 0; seed < runs; seed++) {
      const strategyOptions = { prompt, maxTokens: length, sampling: { ...sampling, seed } };
      if (rule === 'plain') {
        keys.push((await runStrategy(generate(engine, strategyOptions))).sequence.tokens.join(','));
        continue;
      }
      const result = await runStrategy(
        speculativeDecodeWithRule(engine, { ...strategyOptions, draft }, rule),
      );
      keys.push(result.sequence.tokens.join(','));
      tokensPerPass += result.acceptance.tokensPerPass / runs;
    }
    expect(engine.pool.usedCount).toBe(0);
    return { counts: tally(keys), tokensPerPass };
  };
  const exact = await outcomes(speculativeSample);
  const biased = await outcomes(biasedRule);
  const plain = options.plain ? await outcomes('plain') : undefined;
  return {
    exact: chiSquarePValue(exact.counts, probabilities),
    biased: chiSquarePValue(biased.counts, probabilities),
    plain: plain === undefined ? undefined : chiSquarePValue(plain.counts, probabilities),
    tokensPerPass: exact.tokensPerPass,
  };
}

describe('speculative sampling on a tiny random model', () => {
  const model = tinyModel();
  const engine = DecodingEngine.create(model, { numPages: 64, pageSize: 4 });
  afterAll(() => {
    engine.dispose();
    model.dispose();
    model.backend.dispose();
  });

  it('cannot be told from plain sampling; the biased rule can', async () => {
    const result = await continuationTest(engine, [3, 1, 4, 1, 5], {
      sampling: { temperature: 1.5, topK: 4 },
      length: 3,
      runs: 600,
      outside: 23,
      plain: true,
    });
    console.log(`tiny model: chi-square p-values ${JSON.stringify(result)}`);
    expect(result.plain).toBeGreaterThan(1e-3);
    expect(result.exact).toBeGreaterThan(1e-3);
    expect(result.biased).toBeLessThan(1e-4);
  });
});

if (!hasStories) console.warn(`skipped: ${storiesSkipReason}`);

describe.skipIf(!hasStories)('speculative sampling on stories260K', () => {
  let model: LlamaModel;
  let tokenizer: Tokenizer;
  let engine: DecodingEngine;
  beforeAll(async () => {
    ({ model, tokenizer } = await loadStories());
    engine = DecodingEngine.create(model, { numPages: 128, pageSize: 16 });
  });
  afterAll(() => {
    engine.dispose();
    model.dispose();
    model.backend.dispose();
  });

  it('short continuations cannot be told from plain sampling; the biased rule is caught', async () => {
    const prompt = [1, ...tokenizer.encode('Once upon a time, there was a')];
    const result = await continuationTest(engine, prompt, {
      sampling: { temperature: 2, topK: 2 },
      length: 3,
      runs: 300,
      outside: 500,
      plain: false, // plain sampling is checked against the same test on the tiny model (time)
    });
    console.log(`stories260K: chi-square p-values ${JSON.stringify(result)}`);
    expect(result.exact).toBeGreaterThan(1e-3);
    expect(result.biased).toBeLessThan(1e-4);
  });

  it('greedy speculative decoding with sampling options at temperature 0 equals greedy decoding', async () => {
    const prompt = tokenizer.encode('Once upon a time, there was a little girl named Lily.');
    const greedy = await runStrategy(generate(engine, { prompt, maxTokens: 60 }));
    const speculative = await runStrategy(
      speculativeDecode(engine, { prompt, maxTokens: 60, sampling: { temperature: 0, seed: 5 } }),
    );
    expect(speculative.sequence.tokens).toEqual(greedy.sequence.tokens);
    expect(engine.pool.usedCount).toBe(0);
  });
});
