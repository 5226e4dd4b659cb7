import { beamSearch, bestOfN, type DecodingEngine, generate, runStrategy } from '@deft/decoder';
import type { Tokenizer } from '@deft/model';
import { hasStories260K, stories260K, stories260KSkipReason } from '@deft/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { runGenerate } from '../commands/generate.js';
import {
  abandonStream,
  get,
  post,
  readStream,
  type ServerFixture,
  type Stories260KServer,
  serveStories260K,
  settled,
  streamedTexts,
} from './server-test-kit.js';

if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);

describe.skipIf(!hasStories260K)('deft serve on stories260K', () => {
  let served: Stories260KServer;
  let tokenizer: Tokenizer;
  let fixture: ServerFixture;
  /** A standalone engine for the reference runs, beside the server's own. */
  let reference: DecodingEngine;
  let text: (tokens: readonly number[]) => string;
  beforeAll(async () => {
    served = await serveStories260K();
    ({ tokenizer, fixture, reference, text } = served);
  });
  afterAll(async () => {
    await served?.close();
  });

  it("greedy completions equal deft generate's tokens, log-probabilities included", async () => {
    const io = recordingIo();
    const args = ['-m', stories260K.gguf, '-p', 'Once upon a time', '-n', '40', '--backend', 'cpu', '--json'];
    expect(await runGenerate(args, io)).toBe(0);
    const generated = JSON.parse(io.output()).sequences[0] as {
      tokens: number[];
      logProbabilities: number[];
    };
    const served = await post(fixture.server, '/v1/completions', {
      prompt: 'Once upon a time',
      max_tokens: 40,
      temperature: 0,
      logprobs: 1,
    });
    expect(served.status).toBe(200);
    const choice = served.body.choices[0]!;
    expect(choice.text).toBe(text(generated.tokens));
    expect(served.body.usage!.completion_tokens).toBe(generated.tokens.length);
    choice.logprobs!.token_logprobs!.forEach((value, index) => {
      expect(value).toBeCloseTo(generated.logProbabilities[index]!, 5);
    });
    // Speculative decoding gives the same text.
    const fast = await post(fixture.server, '/v1/completions', {
      prompt: 'Once upon a time',
      max_tokens: 40,
      temperature: 0,
      speculative: true,
    });
    expect(fast.body.choices[0]!.text).toBe(choice.text);
  });

  it('n = 4 with a seed is reproducible and equals bestOfN called directly', async () => {
    const request = { prompt: 'Lily saw', n: 4, seed: 11, temperature: 0.9, max_tokens: 24 };
    const first = await post(fixture.server, '/v1/completions', request);
    const second = await post(fixture.server, '/v1/completions', request);
    const texts = first.body.choices.map((choice) => choice.text);
    expect(second.body.choices.map((choice) => choice.text)).toEqual(texts);
    expect(new Set(texts).size).toBeGreaterThan(1);
    const direct = await runStrategy(
      bestOfN(reference, {
        prompt: tokenizer.encode('Lily saw'),
        n: 4,
        maxTokens: 24,
        stopTokens: [tokenizer.eosId],
        sampling: { temperature: 0.9, seed: 11 },
      }),
    );
    const byBranch: string[] = [];
    direct.branchIndices.forEach((branch, rank) => {
      byBranch[branch] = text(direct.sequences[rank]!.tokens);
    });
    expect(texts).toEqual(byBranch);
    const other = await post(fixture.server, '/v1/completions', { ...request, seed: 12 });
    expect(other.body.choices.map((choice) => choice.text)).not.toEqual(texts);
  });

  it('beam search equals the strategy called directly', async () => {
    const served = await post(fixture.server, '/v1/completions', {
      prompt: 'The cat',
      beam_width: 4,
      n: 4,
      length_penalty: 1,
      max_tokens: 20,
      logprobs: 0,
    });
    const direct = await runStrategy(
      beamSearch(reference, {
        prompt: tokenizer.encode('The cat'),
        width: 4,
        lengthPenalty: 1,
        maxTokens: 20,
        stopTokens: [tokenizer.eosId],
      }),
    );
    expect(served.body.choices.map((choice) => choice.text)).toEqual(
      direct.sequences.map((sequence) => text(sequence.tokens)),
    );
    served.body.choices.forEach((choice, index) => {
      expect(choice.logprobs!.token_logprobs).toHaveLength(direct.sequences[index]!.tokens.length);
    });
  });

  it('chat completions render the plain template, stream what they return, report top log-probabilities', async () => {
    const request = {
      messages: [
        { role: 'system', content: 'You tell short stories.' },
        { role: 'user', content: 'Tell me about a dog.' },
      ],
      max_tokens: 20,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    };
    const whole = await post(fixture.server, '/v1/chat/completions', request);
    expect(whole.status).toBe(200);
    const choice = whole.body.choices[0]!;
    expect(choice.message!.role).toBe('assistant');
    const prompt = tokenizer.encode(
      'System: You tell short stories.\nUser: Tell me about a dog.\nAssistant:',
    );
    expect(whole.body.usage!.prompt_tokens).toBe(prompt.length);
    for (const entry of choice.logprobs!.content!) {
      expect(entry.top_logprobs).toHaveLength(3);
      // Greedy: the chosen token is the most likely one.
      expect(entry.logprob).toBeCloseTo(entry.top_logprobs[0]!.logprob, 6);
    }
    const streamed = await readStream(fixture.server, '/v1/chat/completions', { ...request, stream: true });
    expect(streamed.done).toBe(true);
    expect(streamed.events[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(streamedTexts(streamed.events)).toEqual([choice.message!.content]);
  });

  it('32 concurrent streams with a shared prompt decode in shared passes, all correct, and leave no page', async () => {
    await settled(fixture);
    const before = fixture.shared.stats;
    // About 150 tokens every request shares, then a few of its own.
    const system =
      'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ' +
      'One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny and new. ' +
      'Lily wanted to show the ball to her mom, so she ran home as fast as she could. Her mom smiled and said ' +
      'that the ball was very pretty. Lily was happy and played with the ball all day long with her dog Max.';
    const names = Array.from({ length: 32 }, (_, index) => ` One day, friend number ${index + 1}`);
    const streams = await Promise.all(
      names.map((name) =>
        readStream(fixture.server, '/v1/completions', {
          prompt: system + name,
          max_tokens: 32,
          temperature: 0,
          stream: true,
        }),
      ),
    );
    let separateKvBytes = 0;
    for (const [index, stream] of streams.entries()) {
      expect(stream.done).toBe(true);
      const alone = await runStrategy(
        generate(reference, {
          prompt: tokenizer.encode(system + names[index]),
          maxTokens: 32,
          stopTokens: [tokenizer.eosId],
        }),
      );
      expect(streamedTexts(stream.events)).toEqual([text(alone.sequence.tokens)]);
      separateKvBytes += alone.stats.kvBytesRead;
    }
    await settled(fixture);
    const after = fixture.shared.stats;
    const passes = after.passes - before.passes;
    const sessionSteps = after.sessionSteps - before.sessionSteps;
    // The requests decoded together: far fewer passes than request steps.
    expect(sessionSteps / passes).toBeGreaterThan(8);
    expect(after.maxSessionsPerPass).toBeGreaterThanOrEqual(16);
    // The shared prompt is read once per pass, not once per request.
    const read = after.kvBytesRead - before.kvBytesRead;
    const sequence = after.sequenceKvBytes - before.sequenceKvBytes;
    expect(sequence / read).toBeGreaterThan(4);
    // And far less than 32 trees of their own would read for the same requests.
    expect(read).toBeLessThan(separateKvBytes / 2);
    expect(after.reusedPromptTokens - before.reusedPromptTokens).toBeGreaterThanOrEqual(31 * 16);
    const health = (await get(fixture.server, '/health')).body as unknown as {
      pool: { used: number; cached: number };
      tree: { sessions: number };
    };
    expect(health.tree.sessions).toBe(0);
    expect(health.pool.used).toBe(health.pool.cached);
    expect(fixture.shared.evictCached()).toBe(health.pool.cached);
    expect(fixture.engine.pool.usedCount).toBe(0);
  });

  it('aborted streams leave no pages while the others finish', async () => {
    const body = {
      prompt: 'Once upon a time',
      max_tokens: 200,
      temperature: 0,
      stream: true,
      ignore_eos: true,
    };
    const aborted = Array.from({ length: 6 }, () =>
      abandonStream(fixture.server, '/v1/completions', body, 3),
    );
    const finished = readStream(fixture.server, '/v1/completions', { ...body, max_tokens: 30 });
    await Promise.all(aborted);
    expect((await finished).done).toBe(true);
    await settled(fixture);
    expect(fixture.shared.sessionCount).toBe(0);
    expect(fixture.engine.pool.usedCount).toBe(fixture.shared.cachedPages);
  });
});
