import { CapacityError, InvalidArgumentError } from '@deft/core';
import { tinyModel } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { DecodingEngine } from '../engine/decoding-engine.js';
import { beamSearch } from './beam-search.js';
import { bestOfN } from './best-of-n.js';
import { fewShot } from './few-shot.js';
import { generate } from './generate.js';
import { runStrategy } from './run-strategy.js';
import { speculativeDecode } from './speculative-decode.js';
import { treeOfThoughts } from './tree-of-thoughts.js';

// The tiny model's context length is 256 tokens: a 240-token prompt leaves room for 16 generated tokens.
const model = tinyModel();
const contextLength = model.config.contextLength;
const prompt = Array.from({ length: contextLength - 16 }, (_, index) => 1 + (index % 20));
const room = contextLength - prompt.length;
const engine = DecodingEngine.create(model, { numPages: 512, pageSize: 16 });

afterAll(() => {
  engine.dispose();
  model.dispose();
  model.backend.dispose();
});

describe("generation stops at the model's context length", () => {
  it('reads the context length from the model', () => {
    expect(contextLength).toBe(256);
    const session = engine.openSession(prompt);
    expect(session.contextLength).toBe(contextLength);
    expect(session.contextRoom(session.tree.root)).toBe(room);
    session.release();
  });

  it('greedy and sampled generation: prompt + tokens fill the context, finish reason "context"', async () => {
    for (const sampling of [undefined, { temperature: 1, seed: 3 }]) {
      const result = await runStrategy(
        generate(engine, { prompt, maxTokens: 1_000_000_000, ...(sampling ? { sampling } : {}) }),
      );
      expect(result.sequence.tokens).toHaveLength(room);
      expect(result.sequence.finishReason).toBe('context');
    }
    // The token limit still wins when it comes first.
    const short = await runStrategy(generate(engine, { prompt, maxTokens: room - 1 }));
    expect(short.sequence.finishReason).toBe('length');
    expect(engine.pool.usedCount).toBe(0);
  });

  it('best-of-n, beam search and few-shot stop every sequence at the context length', async () => {
    const best = await runStrategy(
      bestOfN(engine, { prompt, n: 3, maxTokens: 600, sampling: { temperature: 1, seed: 1 } }),
    );
    for (const sequence of best.sequences) {
      expect(sequence.tokens).toHaveLength(room);
      expect(sequence.finishReason).toBe('context');
    }
    const beams = await runStrategy(beamSearch(engine, { prompt, width: 3, maxTokens: 600 }));
    expect(beams.sequences.length).toBeGreaterThan(0);
    for (const sequence of beams.sequences) {
      expect(sequence.tokens).toHaveLength(room);
      expect(sequence.finishReason).toBe('context');
    }
    const branches = [[3], [4, 5, 6]];
    const few = await runStrategy(fewShot(engine, { prompt, branches, maxTokens: 600 }));
    few.sequences.forEach((sequence, index) => {
      expect(prompt.length + branches[index]!.length + sequence.tokens.length).toBe(contextLength);
      expect(sequence.finishReason).toBe('context');
    });
    expect(engine.pool.usedCount).toBe(0);
  });

  it('speculative decoding keeps its drafts inside the context and stops there', async () => {
    const draft = () => [{ token: 5, children: [{ token: 6, children: [{ token: 7, children: [] }] }] }];
    const result = await runStrategy(speculativeDecode(engine, { prompt, maxTokens: 600, draft }));
    expect(result.sequence.tokens).toHaveLength(room);
    expect(result.sequence.finishReason).toBe('context');
  });

  it('tree of thoughts ends thoughts at the context length', async () => {
    const result = await runStrategy(
      treeOfThoughts(engine, {
        prompt,
        branching: 2,
        keep: 2,
        maxDepth: 50,
        maxTokens: 6,
        score: () => 0,
      }),
    );
    expect(prompt.length + result.best.tokens.length).toBeLessThanOrEqual(contextLength);
    for (const answer of result.answers) {
      expect(prompt.length + answer.pathTokens.length).toBeLessThanOrEqual(contextLength);
    }
    expect(result.best.finishReason).toBe('context');
  });

  it('refuses a prompt that leaves no room with a typed error that says what to do', () => {
    const full = Array.from({ length: contextLength }, () => 1);
    expect(() => engine.openSession(full)).toThrow(InvalidArgumentError);
    expect(() => engine.openSession(full)).toThrow(
      /context length is 256.*shorten the prompt to at most 255/,
    );
    engine.openSession(full.slice(1)).release();
    expect(engine.pool.usedCount).toBe(0);
  });

  it('refuses few-shot branches that fill the context', () => {
    const iterator = fewShot(engine, { prompt, branches: [[1], Array(room).fill(2)], maxTokens: 4 });
    return expect(iterator.next()).rejects.toThrow(/branches\[1\]/);
  });

  it('evaluate refuses a tree whose path runs past the context, changing nothing', async () => {
    const session = engine.openSession(prompt);
    try {
      session.tree.append(session.tree.root, Array(room + 1).fill(1));
      const used = engine.pool.usedCount;
      await expect(session.evaluate()).rejects.toSatisfy(CapacityError.isInstance);
      expect(engine.pool.usedCount).toBe(used);
    } finally {
      session.release();
    }
  });
});
