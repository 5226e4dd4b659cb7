import { connect } from 'node:net';
import { ChatTemplate, Tokenizer, type TokenKind } from '@deft/model';
import { tinyModel } from '@deft/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelChatFormat, renderPlainChat } from './chat-format.js';
import {
  abandonStream,
  request as exchange,
  get,
  post,
  readStream,
  type ServerFixture,
  serveModel,
  settled,
  streamedTexts,
} from './server-test-kit.js';

/** A tokenizer for the tiny random model: `<unk>`, `<s>`, `</s>` and the letters a to u. */
function letterTokenizer(): Tokenizer {
  const letters = Array.from({ length: 21 }, (_, index) => String.fromCharCode(97 + index));
  const pieces = ['<unk>', '<s>', '</s>', ...letters];
  return new Tokenizer({
    pieces,
    scores: pieces.map(() => 0),
    kinds: pieces.map((_, index): TokenKind => (index === 0 ? 'unknown' : index < 3 ? 'control' : 'normal')),
    bosId: 1,
    eosId: 2,
    unknownId: 0,
    addSpacePrefix: false,
    addBos: true,
  });
}

describe('deft serve on a tiny random model', () => {
  const model = tinyModel();
  const tokenizer = letterTokenizer();
  let fixture: ServerFixture;
  beforeAll(async () => {
    fixture = await serveModel(model, tokenizer, { apiKey: 'secret', maxBodyBytes: 4096 });
  });
  afterAll(async () => {
    await fixture.close();
    expect(fixture.engine.pool.usedCount).toBe(0);
    model.dispose();
    model.backend.dispose();
  });
  const auth = { authorization: 'Bearer secret' };

  it('listens on 127.0.0.1 and serves /health, /v1/models and completions', async () => {
    const { server } = fixture;
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = (await get(server, '/health')).body;
    expect(health).toMatchObject({ status: 'ok', pool: { pages: 256, used: 0 } });
    const models = (await get(server, '/v1/models', auth)).body;
    expect(models).toEqual({
      object: 'list',
      data: [expect.objectContaining({ id: 'test-model', object: 'model' })],
    });
    const completion = await post(
      server,
      '/v1/completions',
      { prompt: 'abcabc', max_tokens: 5, temperature: 0, ignore_eos: true },
      auth,
    );
    expect(completion.status).toBe(200);
    expect(completion.body).toMatchObject({
      object: 'text_completion',
      model: 'test-model',
      choices: [{ index: 0, finish_reason: 'length' }],
      usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 },
    });
  });

  it('answers every bad request with its status and an error object naming the field, and keeps serving', async () => {
    const { server } = fixture;
    const cases: [unknown, string | null][] = [
      ['{"prompt": "ab"', null],
      [[1, 2], 'body'],
      [{}, 'prompt'],
      [{ prompt: 'ab', max_tokens: 0 }, 'max_tokens'],
      [{ prompt: 'ab', max_tokens: 1.5 }, 'max_tokens'],
      [{ prompt: 'ab', temperature: 3 }, 'temperature'],
      [{ prompt: 'ab', top_p: 0 }, 'top_p'],
      [{ prompt: 'ab', top_k: 'many' }, 'top_k'],
      [{ prompt: 'ab', seed: 0.5 }, 'seed'],
      [{ prompt: 'ab', n: 0 }, 'n'],
      [{ prompt: 'ab', n: 3, best_of: 2 }, 'best_of'],
      [{ prompt: 'ab', n: 1, best_of: 2, stream: true }, 'best_of'],
      [{ prompt: 'ab', logprobs: 50 }, 'logprobs'],
      [{ prompt: 'ab', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ prompt: 'ab', stop: [''] }, 'stop'],
      [{ prompt: 'ab', stream: 'yes' }, 'stream'],
      [{ prompt: 'ab', beam_width: 2, temperature: 0.5 }, 'temperature'],
      [{ prompt: 'ab', beam_width: 2, n: 3 }, 'n'],
      [{ prompt: 'ab', length_penalty: 2 }, 'length_penalty'],
      [{ prompt: 'ab', speculative: true, n: 2, temperature: 0 }, 'n'],
      [{ prompt: 'ab', draft_length: 3 }, 'draft_length'],
      [{ prompt: 'ab', presence_penalty: 1 }, 'presence_penalty'],
      [{ prompt: [1, 99] }, 'prompt'],
      [{ prompt: 'ab', model: 7 }, 'model'],
      [{ prompt: 'a'.repeat(400) }, 'prompt'],
    ];
    for (const [body, param] of cases) {
      const response = await post(server, '/v1/completions', body, auth);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(typeof response.body.error.message).toBe('string');
    }
    const chatCases: [unknown, string][] = [
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
      [
        {
          messages: [
            { role: 'user', content: 'a' },
            { role: 'user', content: 5 },
          ],
        },
        'messages[1].content',
      ],
      [{ messages: [{ role: 'user', content: 'a' }], best_of: 2 }, 'best_of'],
      [{ messages: [{ role: 'user', content: 'a' }], top_logprobs: 2 }, 'top_logprobs'],
    ];
    for (const [body, param] of chatCases) {
      const response = await post(server, '/v1/chat/completions', body, auth);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.param).toBe(param);
    }
    // Prompt beyond the model's context length (256 tokens): 400 with a code saying so.
    const long = await post(server, '/v1/completions', { prompt: Array(300).fill(3) }, auth);
    expect(long.status).toBe(400);
    expect(long.body.error).toMatchObject({ param: 'prompt', code: 'context_length_exceeded' });
    // Wrong or missing key: 401; /health needs none.
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'secret' }]) {
      const response = await post(server, '/v1/completions', { prompt: 'ab' }, headers);
      expect(response.status).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
      expect(response.body.error.type).toBe('authentication_error');
    }
    // Too large a body: 413.
    const large = await post(server, '/v1/completions', { prompt: 'a'.repeat(5000) }, auth);
    expect(large.status).toBe(413);
    expect(large.body.error.code).toBe('request_too_large');
    // Unknown route and wrong method.
    expect((await get(server, '/v2/things')).status).toBe(404);
    const wrongMethod = await exchange(server, 'GET', '/v1/completions', undefined, auth);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
    expect(JSON.parse(wrongMethod.text).error.code).toBe('method_not_allowed');
    expect((await get(server, '/v1/models/other', auth)).status).toBe(404);
    // Still serving, and nothing leaked.
    const after = await post(
      server,
      '/v1/completions',
      { prompt: 'abc', max_tokens: 3, ignore_eos: true },
      auth,
    );
    expect(after.status).toBe(200);
    await settled(fixture);
    expect(fixture.engine.pool.usedCount).toBe(fixture.shared.cachedPages);
  });

  it('answers 503 with Retry-After when the page pool is full, and serves again once pages are free', async () => {
    const small = await serveModel(model, tokenizer, { numPages: 12, cachePages: 0 });
    // A live session holding 10 of the 12 pages (two shared pieces of 16 tokens and a tail of 8).
    const occupant = small.shared.openSession(tokenizer.encode('abcdefghijklmnopqrstuabcdefghijklmnopqr'));
    try {
      expect(small.engine.pool.freeCount).toBe(2);
      // A prompt longer than the whole pool (12 pages of 4 tokens) can never be served: 400, not 503.
      const tooLong = await post(small.server, '/v1/completions', { prompt: Array(60).fill(3) });
      expect(tooLong.status).toBe(400);
      expect(tooLong.body.error).toMatchObject({ param: 'prompt', code: 'context_length_exceeded' });
      const prompt = 'tsrqponmlkjihgfedcba'; // a piece of 16 tokens and a tail of 5: 6 pages
      const refused = await post(small.server, '/v1/completions', { prompt, max_tokens: 2 });
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body.error).toMatchObject({ type: 'server_overloaded', code: 'kv_pool_full' });
      // A prompt that fits but whose sequence outgrows the pool: 503 before streaming, an error event after.
      const grows = { prompt: 'ba', max_tokens: 30, ignore_eos: true };
      expect((await post(small.server, '/v1/completions', grows)).status).toBe(503);
      const stream = await readStream(small.server, '/v1/completions', { ...grows, stream: true });
      expect(stream.status).toBe(200);
      expect(stream.events.at(-1)!.error).toMatchObject({ type: 'server_overloaded' });
      expect(stream.done).toBe(true);
      await settled(small);
      expect(small.engine.pool.freeCount).toBe(2);
      occupant.release();
      const served = await post(small.server, '/v1/completions', { prompt, max_tokens: 2 });
      expect(served.status).toBe(200);
      expect(small.server.counters().rejectedRequests).toBe(2);
      await settled(small);
      expect(small.engine.pool.usedCount).toBe(0);
    } finally {
      occupant.release();
      await small.close();
    }
  });

  it('evicts cached prompts to make room for the n choices of a request, instead of answering 503', async () => {
    const small = await serveModel(model, tokenizer, { numPages: 12, cachePages: 12 });
    try {
      // Two pieces of 16 tokens (8 pages) stay cached after this request; 4 pages are left free.
      const cached = { prompt: 'abcdefghijklmnopqrstuabcdefghijkl', max_tokens: 1 };
      expect((await post(small.server, '/v1/completions', cached)).status).toBe(200);
      await settled(small);
      expect(small.shared.cachedPages).toBe(8);
      expect(small.engine.pool.freeCount).toBe(4);
      // A tail of 3 tokens (1 page), then 4 choices that each need a page of their own.
      const choices = { prompt: 'ba', n: 4, max_tokens: 2, seed: 1, ignore_eos: true };
      const response = await post(small.server, '/v1/completions', choices);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      expect(response.body.choices).toHaveLength(4);
      await settled(small);
      expect(small.engine.pool.usedCount).toBe(small.shared.cachedPages);
    } finally {
      await small.close();
    }
  });

  it('answers a malformed model path with 404 and takes an upload cut short as the client leaving', async () => {
    const logged: string[] = [];
    const logging = await serveModel(model, tokenizer, { log: (line) => logged.push(line) });
    try {
      const malformed = await get(logging.server, '/v1/models/%E0%A4%A');
      expect(malformed.status).toBe(404);
      expect(malformed.body.error.code).toBe('model_not_found');
      // Headers and half a body, then the connection drops.
      const { port } = logging.server;
      await new Promise<void>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(
            'POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n' +
              'content-length: 100\r\n\r\n{"prompt":',
          );
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 50);
        });
        socket.on('error', reject);
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(logged).toEqual([]);
      const after = await post(logging.server, '/v1/completions', { prompt: 'ab', max_tokens: 2 });
      expect(after.status).toBe(200);
    } finally {
      await logging.close();
    }
  });

  it('streams chunks that concatenate to the non-streamed text, for completions and chat', async () => {
    const { server } = fixture;
    for (const path of ['/v1/completions', '/v1/chat/completions']) {
      const request = {
        ...(path === '/v1/completions'
          ? { prompt: 'abc' }
          : { messages: [{ role: 'user', content: 'abc' }] }),
        n: 3,
        seed: 4,
        temperature: 1,
        max_tokens: 12,
        ignore_eos: true,
      };
      const whole = await post(server, path, request, auth);
      const { contentType, events, done } = await readStream(
        server,
        path,
        { ...request, stream: true },
        auth,
      );
      expect(contentType).toBe('text/event-stream');
      expect(done).toBe(true);
      const texts = streamedTexts(events);
      const expected = whole.body.choices.map((choice) => choice.text ?? choice.message?.content);
      expect(texts).toEqual(expected);
      expect(events.at(-1)!.usage).toEqual(whole.body.usage);
      expect(events.at(-1)!.choices).toEqual([]);
      const finishes = events.flatMap((event) =>
        event.choices.filter((choice) => choice.finish_reason !== null),
      );
      expect(finishes).toHaveLength(3);
    }
  });

  it("renders chat with the model's own template where it has one, and a conversation it refuses is a 400", async () => {
    const template = new ChatTemplate(
      "{% if messages[0].role == 'assistant' %}{{ raise_exception('start with a user message') }}{% endif %}" +
        "{% for m in messages %}{% if m.role == 'user' %}u{% else %}s{% endif %}{{ m.content }}{% endfor %}" +
        '{% if add_generation_prompt %}a{% endif %}',
      tokenizer,
    );
    const templated = await serveModel(model, tokenizer, { chatFormat: modelChatFormat(template) });
    try {
      const messages = [
        { role: 'system', content: 'bcd' },
        { role: 'user', content: 'efg' },
      ];
      const reply = await post(templated.server, '/v1/chat/completions', { messages, max_tokens: 3 });
      expect(reply.status).toBe(200);
      // BOS, then 's' 'b' 'c' 'd' 'u' 'e' 'f' 'g' 'a' from the template.
      expect(reply.body.usage!.prompt_tokens).toBe(tokenizer.encode('sbcduefga').length);
      expect(reply.body.usage!.prompt_tokens).toBe(10);
      const refused = await post(templated.server, '/v1/chat/completions', {
        messages: [{ role: 'assistant', content: 'ab' }],
      });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatchObject({ param: 'messages' });
      expect(refused.body.error.message).toContain('start with a user message');
    } finally {
      await templated.close();
    }
  });

  it('stops at a stop string without sending it', async () => {
    const { server } = fixture;
    const whole = await post(
      server,
      '/v1/completions',
      { prompt: 'abc', max_tokens: 40, temperature: 0, ignore_eos: true },
      auth,
    );
    const text = whole.body.choices[0]!.text!;
    const stop = text.slice(5, 7);
    const cut = await post(
      server,
      '/v1/completions',
      { prompt: 'abc', max_tokens: 40, temperature: 0, ignore_eos: true, stop },
      auth,
    );
    expect(cut.body.choices[0]!).toMatchObject({
      text: text.slice(0, text.indexOf(stop)),
      finish_reason: 'stop',
    });
  });

  it('leaves no page behind whatever mix of requests runs at once, aborted ones included (property)', async () => {
    const request = fc.record({
      prompt: fc.stringMatching(/^[a-u]{0,40}$/),
      mode: fc.constantFrom('sample', 'beam', 'speculative', 'chat'),
      n: fc.integer({ min: 1, max: 3 }),
      maxTokens: fc.integer({ min: 1, max: 12 }),
      stream: fc.boolean(),
      abortAfter: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      stop: fc.option(fc.stringMatching(/^[a-u]{1,2}$/), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(request, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 10, max: 60 }),
        async (requests, numPages) => {
          const small = await serveModel(model, tokenizer, { numPages, cachePages: 4 });
          try {
            await Promise.all(
              requests.map(async (item) => {
                const body = {
                  ...(item.mode === 'chat'
                    ? { messages: [{ role: 'user', content: item.prompt }] }
                    : { prompt: item.prompt }),
                  max_tokens: item.maxTokens,
                  stream: item.stream || item.abortAfter !== undefined,
                  ...(item.mode === 'beam' ? { beam_width: 3, n: item.n } : {}),
                  ...(item.mode === 'speculative' ? { speculative: true, temperature: 0 } : {}),
                  ...(item.mode === 'sample' || item.mode === 'chat' ? { n: item.n, seed: 1 } : {}),
                  ...(item.stop === undefined ? {} : { stop: item.stop }),
                };
                const path = item.mode === 'chat' ? '/v1/chat/completions' : '/v1/completions';
                // A prompt longer than the whole pool (pages of 4 tokens) is a 400; the rest 200 or 503.
                const promptText =
                  item.mode === 'chat'
                    ? renderPlainChat([{ role: 'user', content: item.prompt }])
                    : item.prompt;
                const fits = Math.ceil(tokenizer.encode(promptText).length / 4) <= numPages;
                const statuses = fits ? [200, 503] : [400];
                if (item.abortAfter !== undefined) {
                  await abandonStream(small.server, path, body, item.abortAfter).catch(() => undefined);
                  return;
                }
                if (body.stream) {
                  const streamed = await readStream(small.server, path, body);
                  expect(statuses).toContain(streamed.status);
                  if (streamed.status === 200) expect(streamed.done).toBe(true);
                } else {
                  const response = await post(small.server, path, body);
                  expect(statuses).toContain(response.status);
                }
              }),
            );
            await settled(small);
            expect(small.shared.sessionCount).toBe(0);
            expect(small.engine.pool.usedCount).toBe(small.shared.cachedPages);
            expect(small.shared.cachedPages).toBeLessThanOrEqual(4);
          } finally {
            await small.close();
          }
          expect(small.engine.pool.usedCount).toBe(0);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('frees the pages of streams aborted mid-way, and the others finish', async () => {
    const { server } = fixture;
    const body = { prompt: 'abcdefgh', max_tokens: 60, ignore_eos: true, stream: true, temperature: 0 };
    const aborted = Array.from({ length: 4 }, () => abandonStream(server, '/v1/completions', body, 3, auth));
    const finished = post(server, '/v1/completions', { ...body, stream: false, max_tokens: 20 }, auth);
    await Promise.all(aborted);
    expect((await finished).body.choices[0]!.finish_reason).toBe('length');
    await settled(fixture);
    expect(fixture.server.counters().cancelledRequests).toBeGreaterThanOrEqual(4);
    expect(fixture.shared.sessionCount).toBe(0);
    expect(fixture.engine.pool.usedCount).toBe(fixture.shared.cachedPages);
  });
});
