import { beamSearch, type DecodingEngine, runStrategy } from '@deft/decoder';
import type { Tokenizer } from '@deft/model';
import { hasStories260K, stories260K, stories260KSkipReason } from '@deft/testing';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { runGenerate } from '../commands/generate.js';
import { type ServerFixture, type Stories260KServer, serveStories260K, settled } from './server-test-kit.js';

// The server as users reach it: through the official `openai` client over 127.0.0.1.

if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);

const API_KEY = 'test-key';

describe.skipIf(!hasStories260K)('deft serve through the openai client (stories260K)', () => {
  let served: Stories260KServer;
  let tokenizer: Tokenizer;
  let fixture: ServerFixture;
  let client: OpenAI;
  /** A standalone engine for the reference runs, beside the server's own. */
  let reference: DecodingEngine;
  let text: (tokens: readonly number[]) => string;
  beforeAll(async () => {
    served = await serveStories260K({ apiKey: API_KEY });
    ({ tokenizer, fixture, reference, text } = served);
    client = new OpenAI({ apiKey: API_KEY, baseURL: `${fixture.server.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await served?.close();
  });

  it("greedy completions equal deft generate's tokens", async () => {
    const io = recordingIo();
    const args = ['-m', stories260K.gguf, '-p', 'Once upon a time', '-n', '32', '--backend', 'cpu', '--json'];
    expect(await runGenerate(args, io)).toBe(0);
    const generated = JSON.parse(io.output()).sequences[0] as { tokens: number[] };
    const completion = await client.completions.create({
      model: 'stories260K',
      prompt: 'Once upon a time',
      max_tokens: 32,
      temperature: 0,
    });
    expect(completion.choices[0]!.text).toBe(text(generated.tokens));
    expect(completion.usage!.completion_tokens).toBe(generated.tokens.length);
    const models = await client.models.list();
    expect(models.data.length).toBeGreaterThan(0);
  });

  it('n = 4 with a seed is reproducible', async () => {
    const body = {
      model: 'stories260K',
      prompt: 'Lily saw',
      n: 4,
      seed: 7,
      temperature: 0.9,
      max_tokens: 20,
    };
    const first = await client.completions.create(body);
    const second = await client.completions.create(body);
    expect(first.choices).toHaveLength(4);
    expect(second.choices.map((choice) => choice.text)).toEqual(first.choices.map((choice) => choice.text));
  });

  it('beam search (an extension field) equals the strategy called directly', async () => {
    // beam_width is this server's extension: the client passes unknown body fields through.
    const body = {
      model: 'stories260K',
      prompt: 'The cat',
      max_tokens: 16,
      temperature: 0,
      beam_width: 3,
    } as OpenAI.CompletionCreateParamsNonStreaming;
    const served = await client.completions.create(body);
    const direct = await runStrategy(
      beamSearch(reference, {
        prompt: tokenizer.encode('The cat'),
        width: 3,
        maxTokens: 16,
        stopTokens: [tokenizer.eosId],
      }),
    );
    expect(served.choices[0]!.text).toBe(text(direct.sequences[0]!.tokens));
  });

  it('streamed chunks concatenate to the non-streamed text, for completions and chat', async () => {
    const plain = await client.completions.create({
      model: 'stories260K',
      prompt: 'One day',
      max_tokens: 24,
      temperature: 0,
    });
    let streamed = '';
    for await (const chunk of await client.completions.create({
      model: 'stories260K',
      prompt: 'One day',
      max_tokens: 24,
      temperature: 0,
      stream: true,
    })) {
      streamed += chunk.choices[0]?.text ?? '';
    }
    expect(streamed).toBe(plain.choices[0]!.text);

    const messages = [{ role: 'user' as const, content: 'Tell me about a dog.' }];
    const chat = await client.chat.completions.create({
      model: 'stories260K',
      messages,
      max_tokens: 20,
      temperature: 0,
    });
    let chatStreamed = '';
    for await (const chunk of await client.chat.completions.create({
      model: 'stories260K',
      messages,
      max_tokens: 20,
      temperature: 0,
      stream: true,
    })) {
      chatStreamed += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(chatStreamed).toBe(chat.choices[0]!.message.content);
  });

  it('32 concurrent streams with a shared prompt all finish and leave the pool empty', async () => {
    const shared = 'Once upon a time, there was a little girl named Lily. She loved to play in the park. ';
    const results = await Promise.all(
      Array.from({ length: 32 }, async (_, index) => {
        let streamed = '';
        let finish: string | null = null;
        for await (const chunk of await client.completions.create({
          model: 'stories260K',
          prompt: `${shared}Friend ${index + 1} said`,
          max_tokens: 16,
          temperature: 0,
          stream: true,
        })) {
          streamed += chunk.choices[0]?.text ?? '';
          finish = chunk.choices[0]?.finish_reason ?? finish;
        }
        return { streamed, finish };
      }),
    );
    for (const result of results) expect(result.finish === 'stop' || result.finish === 'length').toBe(true);
    await settled(fixture);
    fixture.shared.evictCached();
    expect(fixture.shared.sessionCount).toBe(0);
    expect(fixture.engine.pool.usedCount).toBe(0);
  });

  it('a stream aborted mid-way leaves no pages, and the server keeps serving', async () => {
    const controller = new AbortController();
    // ignore_eos is this server's extension.
    const body = {
      model: 'stories260K',
      prompt: 'Once upon a time',
      max_tokens: 200,
      temperature: 0,
      stream: true,
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsStreaming;
    const stream = await client.completions.create(body, { signal: controller.signal });
    let chunks = 0;
    try {
      for await (const _chunk of stream) {
        chunks += 1;
        if (chunks === 3) controller.abort();
      }
    } catch (error) {
      // The client reports the abort as an error or ends the iteration, by version: either is fine.
      expect(error).toBeInstanceOf(Error);
    }
    expect(chunks).toBeGreaterThanOrEqual(3);
    expect(chunks).toBeLessThan(100);
    await settled(fixture);
    expect(fixture.shared.sessionCount).toBe(0);
    expect(fixture.engine.pool.usedCount).toBe(fixture.shared.cachedPages);
    const after = await client.completions.create({ model: 'stories260K', prompt: 'Hi', max_tokens: 4 });
    expect(after.choices).toHaveLength(1);
  });

  it('bad input gets its status code as a typed client error, and the server keeps serving', async () => {
    await expect(
      client.completions.create({ model: 'stories260K', prompt: 'Hi', max_tokens: -3 }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(
      client.completions.create({ model: 'stories260K', prompt: 'Hi', top_p: 1.5 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    const wrongKey = new OpenAI({ apiKey: 'wrong', baseURL: `${fixture.server.url}/v1`, maxRetries: 0 });
    await expect(
      wrongKey.completions.create({ model: 'stories260K', prompt: 'Hi', max_tokens: 2 }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const ok = await client.completions.create({ model: 'stories260K', prompt: 'Hi', max_tokens: 2 });
    expect(ok.choices).toHaveLength(1);
  });
});
