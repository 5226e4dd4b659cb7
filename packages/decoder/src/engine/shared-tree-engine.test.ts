import { CapacityError, InvalidStateError } from '@deft/core';
import { tinyModel } from '@deft/testing';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { beamSearch } from '../strategies/beam-search.js';
import { bestOfN } from '../strategies/best-of-n.js';
import { generate } from '../strategies/generate.js';
import { runStrategy } from '../strategies/run-strategy.js';
import { speculativeDecode } from '../strategies/speculative-decode.js';
import { DecodingEngine } from './decoding-engine.js';
import { SharedTreeEngine } from './shared-tree-engine.js';

const model = tinyModel();
afterAll(() => {
  model.dispose();
  model.backend.dispose();
});

/** A 40-token "system prompt" every request starts with, then a request's own tokens. */
const SYSTEM = Array.from({ length: 40 }, (_, index) => (index * 7 + 3) % 24);
const prompts = [
  [...SYSTEM, 1, 2, 3],
  [...SYSTEM, 5],
  [...SYSTEM, 9, 9, 4, 4, 8],
  [...SYSTEM, 11, 2],
];

function engines(numPages = 256, pageSize = 4) {
  const alone = DecodingEngine.create(model, { numPages, pageSize });
  const sharedEngine = DecodingEngine.create(model, { numPages, pageSize });
  const shared = SharedTreeEngine.create(sharedEngine);
  return {
    alone,
    shared,
    dispose() {
      shared.dispose();
      alone.dispose();
      sharedEngine.dispose();
    },
  };
}

describe('SharedTreeEngine', () => {
  it('concurrent greedy requests equal separate runs, decode in shared passes and read the shared prompt once', async () => {
    const { alone, shared, dispose } = engines();
    const separate = [];
    let separateKvBytes = 0;
    for (const prompt of prompts) {
      const result = await runStrategy(generate(alone, { prompt, maxTokens: 12 }));
      separate.push(result.sequence.tokens);
      separateKvBytes += result.stats.kvBytesRead;
    }
    const together = await Promise.all(
      prompts.map((prompt) => runStrategy(generate(shared, { prompt, maxTokens: 12 }))),
    );
    expect(together.map((result) => result.sequence.tokens)).toEqual(separate);
    const stats = shared.stats;
    // One prefill pass and 11 decoding passes for all four requests, not 4 × 12.
    expect(stats.passes).toBe(12);
    expect(stats.sessionSteps).toBe(48);
    expect(stats.maxSessionsPerPass).toBe(4);
    // The shared tree reads the common prompt once per pass: less than the four trees together.
    expect(stats.kvBytesRead).toBeLessThan(separateKvBytes);
    expect(stats.sequenceKvBytes / stats.kvBytesRead).toBeGreaterThan(2.5);
    // Pieces of the system prompt were placed once, by the first request.
    expect(stats.reusedPromptTokens).toBe(3 * 32);
    expect(shared.sessionCount).toBe(0);
    expect(shared.engine.pool.usedCount).toBe(shared.cachedPages);
    dispose();
  });

  it('beam search, best-of-N and speculative decoding give what they give alone', async () => {
    const { alone, shared, dispose } = engines();
    const prompt = prompts[0]!;
    const beamAlone = await runStrategy(beamSearch(alone, { prompt, width: 3, maxTokens: 8 }));
    const bestAlone = await runStrategy(
      bestOfN(alone, { prompt, n: 4, maxTokens: 8, sampling: { temperature: 1, seed: 5 } }),
    );
    const fastAlone = await runStrategy(speculativeDecode(alone, { prompt: prompts[2]!, maxTokens: 16 }));
    const [beam, best, fast, plain] = await Promise.all([
      runStrategy(beamSearch(shared, { prompt, width: 3, maxTokens: 8 })),
      runStrategy(bestOfN(shared, { prompt, n: 4, maxTokens: 8, sampling: { temperature: 1, seed: 5 } })),
      runStrategy(speculativeDecode(shared, { prompt: prompts[2]!, maxTokens: 16 })),
      runStrategy(generate(shared, { prompt: prompts[3]!, maxTokens: 5 })),
    ]);
    expect(beam.sequences.map((sequence) => sequence.tokens)).toEqual(
      beamAlone.sequences.map((sequence) => sequence.tokens),
    );
    beam.sequences.forEach((sequence, index) => {
      expect(sequence.score).toBeCloseTo(beamAlone.sequences[index]!.score, 4);
    });
    expect(best.sequences.map((sequence) => sequence.tokens)).toEqual(
      bestAlone.sequences.map((sequence) => sequence.tokens),
    );
    expect(fast.sequence.tokens).toEqual(fastAlone.sequence.tokens);
    expect(plain.sequence.tokens).toHaveLength(5);
    expect(shared.engine.pool.usedCount).toBe(shared.cachedPages);
    dispose();
  });

  it('a session that stops early or never evaluates gives its pages back and blocks nobody', async () => {
    const { shared, dispose } = engines();
    const idle = shared.openSession(prompts[1]!); // opened, never evaluated
    const stopped = generate(shared, { prompt: prompts[0]!, maxTokens: 50 });
    await stopped.next();
    await stopped.next();
    const result = await runStrategy(generate(shared, { prompt: prompts[2]!, maxTokens: 6 }));
    expect(result.sequence.tokens).toHaveLength(6);
    await stopped.return(undefined as never);
    idle.release();
    idle.release();
    await expect(idle.evaluate()).rejects.toSatisfy(InvalidStateError.isInstance);
    expect(shared.sessionCount).toBe(0);
    expect(shared.engine.pool.usedCount).toBe(shared.cachedPages);
    expect(shared.evictCached()).toBeGreaterThan(0);
    expect(shared.engine.pool.usedCount).toBe(0);
    dispose();
  });

  it('reuses idle pieces of a finished prompt, within the cache budget, evicting them when pages run short', async () => {
    const pool = 40;
    const engine = DecodingEngine.create(model, { numPages: pool, pageSize: 4 });
    const shared = SharedTreeEngine.create(engine, { pieceTokens: 8, cachePages: 12 });
    await runStrategy(generate(shared, { prompt: prompts[0]!, maxTokens: 3 }));
    // 40 system tokens + 3: five whole pieces of 8 (two pages each), capped at 12 cached pages.
    expect(shared.cachedPages).toBe(10);
    const before = shared.stats.reusedPromptTokens;
    await runStrategy(generate(shared, { prompt: prompts[1]!, maxTokens: 3 }));
    expect(shared.stats.reusedPromptTokens - before).toBe(40);
    // A prompt whose new pages fit only without the cache evicts it; one that never fits changes nothing.
    const long = Array.from({ length: 140 }, (_, index) => (index * 5 + 1) % 24);
    const tooLong = Array.from({ length: 200 }, (_, index) => (index * 3 + 2) % 24);
    const nodesBefore = shared.tree.nodeCount;
    expect(() => shared.openSession(tooLong)).toThrow(CapacityError);
    expect(shared.tree.nodeCount).toBe(nodesBefore);
    expect(shared.cachedPages).toBe(10);
    const session = shared.openSession(long);
    expect(shared.cachedPages).toBeLessThan(10);
    session.release();
    shared.evictCached();
    expect(engine.pool.usedCount).toBe(0);
    shared.dispose();
    engine.dispose();
  });

  it('a session released or opened while a pass runs changes nothing the pass reads', async () => {
    // A model whose forward pass waits on a timer, as a GPU's does, so other work runs during a pass.
    const slow = tinyModel();
    const forward = slow.forward.bind(slow);
    slow.forward = async (batch) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return forward(batch);
    };
    const alone = DecodingEngine.create(model, { numPages: 128, pageSize: 4 });
    const engine = DecodingEngine.create(slow, { numPages: 128, pageSize: 4 });
    const shared = SharedTreeEngine.create(engine, { cachePages: 0 });
    const expected = await runStrategy(generate(alone, { prompt: prompts[1]!, maxTokens: 8 }));
    const leaving = shared.openSession(prompts[0]!);
    const running = runStrategy(generate(shared, { prompt: prompts[1]!, maxTokens: 8 }));
    const pending = leaving.evaluate();
    await new Promise((resolve) => setTimeout(resolve, 2)); // the first pass is running now
    const used = engine.pool.usedCount;
    leaving.release();
    expect(engine.pool.usedCount).toBe(used); // its pages stay until the pass that writes them ends
    await expect(pending).rejects.toSatisfy(InvalidStateError.isInstance);
    expect(engine.pool.usedCount).toBeLessThan(used);
    const joining = runStrategy(generate(shared, { prompt: prompts[3]!, maxTokens: 4 }));
    await shared.whenIdle();
    const [result, joined] = await Promise.all([running, joining]);
    expect(result.sequence.tokens).toEqual(expected.sequence.tokens);
    const joinedAlone = await runStrategy(generate(alone, { prompt: prompts[3]!, maxTokens: 4 }));
    expect(joined.sequence.tokens).toEqual(joinedAlone.sequence.tokens);
    await shared.whenIdle();
    expect(shared.sessionCount).toBe(0);
    expect(engine.pool.usedCount).toBe(0);
    shared.dispose();
    engine.dispose();
    alone.dispose();
    slow.dispose();
  });

  it('no page is leaked whatever requests join, stop early or run out of pages (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            system: fc.boolean(),
            own: fc.array(fc.integer({ min: 0, max: 23 }), { minLength: 1, maxLength: 9 }),
            n: fc.integer({ min: 1, max: 3 }),
            maxTokens: fc.integer({ min: 1, max: 10 }),
            stopAfter: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.integer({ min: 8, max: 80 }),
        async (requests, numPages) => {
          const engine = DecodingEngine.create(model, { numPages, pageSize: 4 });
          const shared = SharedTreeEngine.create(engine, { pieceTokens: 8, cachePages: 6 });
          await Promise.all(
            requests.map(async (request) => {
              const prompt = [...(request.system ? SYSTEM.slice(0, 20) : []), ...request.own];
              let steps = 0;
              try {
                const strategy = bestOfN(shared, { prompt, n: request.n, maxTokens: request.maxTokens });
                for await (const _ of strategy) {
                  if (request.stopAfter !== undefined && steps++ >= request.stopAfter) break;
                }
              } catch (error) {
                if (!CapacityError.isInstance(error)) throw error;
              }
            }),
          );
          expect(shared.sessionCount).toBe(0);
          expect(engine.pool.usedCount).toBe(shared.cachedPages);
          expect(shared.cachedPages).toBeLessThanOrEqual(6);
          shared.evictCached();
          expect(engine.pool.usedCount).toBe(0);
          shared.dispose();
          engine.dispose();
        },
      ),
      { numRuns: 40 },
    );
  });
});
