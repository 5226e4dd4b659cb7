import { InvalidArgumentError } from '@deft/core';
import { LlamaModel, loadLlama2cCheckpoint, type Tokenizer } from '@deft/model';
import {
  hasStories260K as hasStories,
  loadStories260K as loadStories,
  stories260K,
  stories260KSkipReason as storiesSkipReason,
  tinyModel,
} from '@deft/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecodingEngine } from '../engine/decoding-engine.js';
import { generate } from '../strategies/generate.js';
import { runStrategy } from '../strategies/run-strategy.js';
import { speculativeDecode } from '../strategies/speculative-decode.js';
import { type DraftNode, draftTokenCount } from './draft-tree.js';
import { ModelDrafter } from './model-drafter.js';
import { promptLookupDrafter } from './prompt-lookup-draft.js';
import { selfDraftCheckpoint } from './self-draft.js';

function depthOf(nodes: readonly DraftNode[]): number {
  return nodes.reduce((deepest, node) => Math.max(deepest, 1 + depthOf(node.children)), 0);
}

describe('drafters on tiny random models', () => {
  const target = tinyModel(1);
  const small = tinyModel(2); // another random model with the same vocabulary
  const engine = DecodingEngine.create(target, { numPages: 128, pageSize: 4 });
  const draftEngine = DecodingEngine.create(small, { numPages: 128, pageSize: 4 });
  const selfEngine = DecodingEngine.create(target, { numPages: 128, pageSize: 4 });
  afterAll(() => {
    for (const owner of [engine, draftEngine, selfEngine]) owner.dispose();
    for (const model of [target, small]) {
      model.dispose();
      model.backend.dispose();
    }
  });

  it('greedy speculative decoding equals greedy decoding for every drafter; every pool ends empty', async () => {
    const prompts = [[1, 2, 3], [5, 9, 5, 9, 5], [7]];
    const drafters = [
      promptLookupDrafter({ minNgram: 1 }),
      new ModelDrafter(draftEngine, { maxTokens: 12, maxDepth: 4 }),
      new ModelDrafter(selfEngine, { maxTokens: 6, maxDepth: 3, branching: 2, width: 2, minProbability: 0 }),
    ];
    for (const prompt of prompts) {
      const greedy = await runStrategy(generate(engine, { prompt, maxTokens: 20 }));
      for (const drafter of drafters) {
        const result = await runStrategy(
          speculativeDecode(engine, { prompt, maxTokens: 20, draft: drafter }),
        );
        expect(result.sequence.tokens).toEqual(greedy.sequence.tokens);
        expect(engine.pool.usedCount).toBe(0);
        expect(draftEngine.pool.usedCount).toBe(0);
        expect(selfEngine.pool.usedCount).toBe(0);
      }
    }
  });

  it('the target model drafting for itself has every draft token of its greedy path accepted', async () => {
    const drafter = new ModelDrafter(selfEngine, {
      maxTokens: 8,
      maxDepth: 4,
      branching: 2,
      width: 1,
      minProbability: 0,
    });
    const result = await runStrategy(
      speculativeDecode(engine, { prompt: [4, 8, 15], maxTokens: 21, draft: drafter }),
    );
    // Each pass: 4 draft tokens on the greedy path accepted, plus the model's own next token.
    expect(result.acceptance.tokensPerPass).toBe(5);
  });

  it('draft trees keep to the node budget and the depth, most probable first', async () => {
    const drafter = new ModelDrafter(draftEngine, {
      maxTokens: 7,
      maxDepth: 3,
      branching: 3,
      width: 2,
      minProbability: 0,
    });
    const context = [3, 1, 4, 1, 5];
    const draft = await drafter.draft(context, { maxDepth: 10 });
    expect(draftTokenCount(draft)).toBe(7);
    expect(depthOf(draft)).toBeLessThanOrEqual(3);
    expect(depthOf(await drafter.draft(context, { maxDepth: 1 }))).toBe(1);
    // The first root is the small model's argmax after the context.
    const session = draftEngine.openSession(context);
    const row = (await session.evaluate()).row(session.root)!;
    session.release();
    const argmax = row.indexOf(Math.max(...row));
    expect(draft[0]!.token).toBe(argmax);
    // A confidence floor above every path's probability drafts nothing.
    const unsure = new ModelDrafter(draftEngine, { minProbability: 0.99 });
    expect(draftTokenCount(await unsure.draft(context, { maxDepth: 4 }))).toBeLessThanOrEqual(1);
    drafter.reset();
    unsure.dispose();
    expect(draftEngine.pool.usedCount).toBe(0);
    await expect(unsure.draft(context, { maxDepth: 4 })).rejects.toThrow(/dispose/);
  });

  it('sampling with a model drafter is reproducible by seed and releases both pools', async () => {
    const drafter = new ModelDrafter(draftEngine, { maxTokens: 8 });
    const run = (seed: number) =>
      runStrategy(
        speculativeDecode(engine, {
          prompt: [2, 7],
          maxTokens: 16,
          draft: drafter,
          sampling: { temperature: 1, seed },
        }),
      );
    const [first, again, other] = [await run(1), await run(1), await run(2)];
    expect(again.sequence.tokens).toEqual(first.sequence.tokens);
    expect(other.sequence.tokens).not.toEqual(first.sequence.tokens);
    expect(engine.pool.usedCount).toBe(0);
    expect(draftEngine.pool.usedCount).toBe(0);
  });

  it('runs sharing one model drafter at the same time each give greedy decoding', async () => {
    const drafter = new ModelDrafter(draftEngine, { maxTokens: 6 });
    const prompts = [
      [1, 2, 3],
      [9, 8],
      [4, 4, 4, 4],
    ];
    const greedy = await Promise.all(
      prompts.map((prompt) => runStrategy(generate(engine, { prompt, maxTokens: 12 }))),
    );
    const speculative = await Promise.all(
      prompts.map((prompt) =>
        runStrategy(speculativeDecode(engine, { prompt, maxTokens: 12, draft: drafter })),
      ),
    );
    speculative.forEach((result, index) => {
      expect(result.sequence.tokens).toEqual(greedy[index]!.sequence.tokens);
    });
    expect(engine.pool.usedCount).toBe(0);
    expect(draftEngine.pool.usedCount).toBe(0);
  });

  it('stops early without leaking pages in either pool', async () => {
    const drafter = new ModelDrafter(draftEngine, { maxTokens: 10 });
    const strategy = speculativeDecode(engine, { prompt: [1, 2, 3], maxTokens: 50, draft: drafter });
    await strategy.next();
    await strategy.next();
    await strategy.return(undefined as never);
    expect(engine.pool.usedCount).toBe(0);
    expect(draftEngine.pool.usedCount).toBe(0);
  });

  it('refuses bad drafters and options with typed errors', async () => {
    const wrongVocabulary = { vocabSize: 7, draft: async () => [] };
    await expect(
      runStrategy(speculativeDecode(engine, { prompt: [1], maxTokens: 4, draft: wrongVocabulary })),
    ).rejects.toThrow(InvalidArgumentError);
    const outOfVocabulary = { draft: async () => [{ token: 99, children: [] }] };
    await expect(
      runStrategy(speculativeDecode(engine, { prompt: [1], maxTokens: 4, draft: outOfVocabulary })),
    ).rejects.toThrow(/not an id of the model/);
    expect(engine.pool.usedCount).toBe(0);
    expect(() => new ModelDrafter(draftEngine, { maxTokens: 0 })).toThrow(InvalidArgumentError);
    expect(() => new ModelDrafter(draftEngine, { minProbability: 1 })).toThrow(/minProbability/);
    expect(() => promptLookupDrafter({ maxNgram: 0 })).toThrow(InvalidArgumentError);
  });
});

if (!hasStories) console.warn(`skipped: ${storiesSkipReason}`);

describe.skipIf(!hasStories)('drafters on stories260K', () => {
  let target: LlamaModel;
  let tokenizer: Tokenizer;
  let engine: DecodingEngine;
  let selfModel: LlamaModel;
  let selfEngine: DecodingEngine;
  beforeAll(async () => {
    ({ model: target, tokenizer } = await loadStories());
    engine = DecodingEngine.create(target, { numPages: 256, pageSize: 16 });
    const checkpoint = await loadLlama2cCheckpoint(stories260K.weights);
    selfModel = LlamaModel.create(target.backend, selfDraftCheckpoint(checkpoint, 4));
    selfEngine = DecodingEngine.create(selfModel, { numPages: 256, pageSize: 16 });
    expect(() => selfDraftCheckpoint(checkpoint, checkpoint.config.numLayers)).toThrow(InvalidArgumentError);
  });
  afterAll(() => {
    selfEngine.dispose();
    selfModel.dispose();
    engine.dispose();
    target.dispose();
    target.backend.dispose();
  });

  it('self-drafting (the first 4 of 5 layers) reproduces greedy decoding and accepts drafts', async () => {
    const prompt = tokenizer.encode('Once upon a time, there was a little girl named Lily.');
    const greedy = await runStrategy(generate(engine, { prompt, maxTokens: 80 }));
    const drafter = new ModelDrafter(selfEngine, { maxTokens: 8, maxDepth: 6 });
    const result = await runStrategy(speculativeDecode(engine, { prompt, maxTokens: 80, draft: drafter }));
    expect(result.sequence.tokens).toEqual(greedy.sequence.tokens);
    console.log(
      `self-draft (4 of 5 layers), 80 tokens: ${result.acceptance.accepted}/${result.acceptance.proposed} accepted, ` +
        `${result.acceptance.tokensPerPass.toFixed(2)} tokens per pass`,
    );
    expect(result.acceptance.acceptedPerPass).toBeGreaterThan(0.5);
    expect(result.acceptance.passes).toBeLessThan(greedy.stats.forwardPasses - 1);
    expect(engine.pool.usedCount).toBe(0);
    expect(selfEngine.pool.usedCount).toBe(0);
  });
});
