import { CapacityError, InvalidArgumentError } from '@deft/core';
import { tinyModel } from '@deft/testing';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { DraftNode } from '../draft/draft-tree.js';
import { beamSearch } from '../strategies/beam-search.js';
import { bestOfN } from '../strategies/best-of-n.js';
import { fewShot } from '../strategies/few-shot.js';
import { generate } from '../strategies/generate.js';
import { runStrategy } from '../strategies/run-strategy.js';
import { speculativeDecode } from '../strategies/speculative-decode.js';
import { treeOfThoughts } from '../strategies/tree-of-thoughts.js';
import { DecodingEngine } from './decoding-engine.js';

const model = tinyModel();

/** A draft path of one node per token. */
function chain(tokens: readonly number[]): DraftNode {
  return { token: tokens[0]!, children: tokens.length > 1 ? [chain(tokens.slice(1))] : [] };
}
afterAll(() => {
  model.dispose();
  model.backend.dispose();
});

describe('DecodingEngine', () => {
  it('validates prompts and releases sessions idempotently', async () => {
    const engine = DecodingEngine.create(model, { numPages: 32, pageSize: 4 });
    expect(() => engine.openSession([])).toThrow(InvalidArgumentError);
    expect(() => engine.openSession([1, 99])).toThrow(/prompt\[1\]/);
    const session = engine.openSession([1, 2, 3, 4, 5]);
    await session.evaluate();
    const [a, b] = session.tree.fork(session.tree.root, 2);
    session.tree.append(a!, [1, 2]);
    session.tree.append(b!, 3);
    const [c] = session.tree.fork(a!, 1);
    session.tree.append(c!, 4);
    await session.evaluate();
    expect(session.pruneExcept([b!])).toBe(2);
    expect(session.tree.dfsOrder()).toEqual(Int32Array.from([0, b!]));
    session.release();
    session.release();
    expect(session.released).toBe(true);
    expect(engine.pool.usedCount).toBe(0);
    engine.dispose();
    engine.dispose();
    expect(engine.disposed).toBe(true);
  });

  it('a search that runs out of pages throws CapacityError and still gives its pages back', async () => {
    const engine = DecodingEngine.create(model, { numPages: 6, pageSize: 2 });
    await expect(runStrategy(bestOfN(engine, { prompt: [1, 2, 3], n: 8, maxTokens: 10 }))).rejects.toSatisfy(
      CapacityError.isInstance,
    );
    expect(engine.pool.usedCount).toBe(0);
    engine.dispose();
  });

  it('speculative decoding equals greedy decoding on a random model for any draft tree', async () => {
    const engine = DecodingEngine.create(model, { numPages: 128, pageSize: 3 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 23 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 23 }), { minLength: 1, maxLength: 4 }), { maxLength: 4 }),
        async (prompt, drafts) => {
          const greedy = await runStrategy(generate(engine, { prompt, maxTokens: 12 }));
          // A draft that proposes the given continuations plus the model's own greedy future.
          const truth = greedy.sequence.tokens;
          const speculative = await runStrategy(
            speculativeDecode(engine, {
              prompt,
              maxTokens: 12,
              draft: (context) => {
                const generated = context.length - prompt.length;
                const future = truth.slice(generated, generated + 3);
                const continuations = [...drafts, ...(future.length > 0 ? [future] : [])];
                return continuations.map(chain);
              },
            }),
          );
          expect(speculative.sequence.tokens).toEqual(truth);
          expect(engine.pool.usedCount).toBe(0);
        },
      ),
      { numRuns: 25, seed: 4 },
    );
    engine.dispose();
  });

  it('no strategy leaks a page, whatever its parameters', async () => {
    const engine = DecodingEngine.create(model, { numPages: 256, pageSize: 4 });
    const prompt = fc.array(fc.integer({ min: 0, max: 23 }), { minLength: 1, maxLength: 10 });
    const stop = fc.array(fc.integer({ min: 0, max: 23 }), { maxLength: 2 });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({
            kind: fc.constant('beam' as const),
            prompt,
            stop,
            width: fc.integer({ min: 1, max: 4 }),
            maxTokens: fc.integer({ min: 1, max: 6 }),
            early: fc.boolean(),
          }),
          fc.record({
            kind: fc.constant('best' as const),
            prompt,
            stop,
            width: fc.integer({ min: 1, max: 4 }),
            maxTokens: fc.integer({ min: 1, max: 6 }),
            early: fc.boolean(),
          }),
          fc.record({
            kind: fc.constant('few' as const),
            prompt,
            stop,
            width: fc.integer({ min: 1, max: 3 }),
            maxTokens: fc.integer({ min: 1, max: 6 }),
            early: fc.boolean(),
          }),
          fc.record({
            kind: fc.constant('tot' as const),
            prompt,
            stop,
            width: fc.integer({ min: 1, max: 3 }),
            maxTokens: fc.integer({ min: 1, max: 4 }),
            early: fc.boolean(),
          }),
        ),
        async (run) => {
          const common = { prompt: run.prompt, maxTokens: run.maxTokens, stopTokens: run.stop };
          if (run.kind === 'beam')
            await runStrategy(beamSearch(engine, { ...common, width: run.width, earlyStopping: run.early }));
          if (run.kind === 'best')
            await runStrategy(
              bestOfN(engine, { ...common, n: run.width, sampling: { temperature: 1, seed: run.width } }),
            );
          if (run.kind === 'few')
            await runStrategy(
              fewShot(engine, {
                ...common,
                branches: Array.from({ length: run.width }, (_, index) => [index + 1]),
              }),
            );
          if (run.kind === 'tot') {
            await runStrategy(
              treeOfThoughts(engine, {
                ...common,
                branching: run.width,
                keep: 2,
                maxDepth: 2,
                score: (thought) => thought.logProbability,
              }),
            );
          }
          expect(engine.pool.usedCount).toBe(0);
        },
      ),
      { numRuns: 40, seed: 9 },
    );
    engine.dispose();
  });
});
