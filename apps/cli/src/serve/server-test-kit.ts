import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { DecodingEngine, SharedTreeEngine } from '@deft/decoder';
import { createCpuBackend } from '@deft/kernels-cpu';
import { LlamaModel, loadGgufModel, type Tokenizer } from '@deft/model';
import { stories260K } from '@deft/testing';
import type { ChatFormat } from './chat-format.js';
import { type RunningServer, startOpenAiServer } from './openai-server.js';

// Helpers of the server's tests (this app is private: nothing here ships).

/** What the tests read of a response body or a streamed chunk (absent fields are simply undefined). */
export interface ApiBody {
  readonly [field: string]: unknown;
  readonly choices: readonly ApiChoice[];
  readonly usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  readonly error: { message: string; type: string; param: string | null; code: string | null };
}

/** A choice of a response or of a chunk. */
export interface ApiChoice {
  readonly index: number;
  readonly text?: string;
  readonly message?: { role: string; content: string };
  readonly delta?: { role?: string; content?: string };
  readonly finish_reason: string | null;
  readonly logprobs: {
    readonly tokens?: string[];
    readonly token_logprobs?: number[];
    readonly top_logprobs?: Record<string, number>[];
    readonly content?: {
      token: string;
      logprob: number;
      top_logprobs: { token: string; logprob: number }[];
    }[];
  } | null;
}

export interface ServerFixture {
  readonly server: RunningServer;
  readonly shared: SharedTreeEngine;
  readonly engine: DecodingEngine;
  close(): Promise<void>;
}

/** A server on 127.0.0.1 and a free port over a fresh engine. */
export async function serveModel(
  model: LlamaModel,
  tokenizer: Tokenizer,
  options: {
    numPages?: number;
    pageSize?: number;
    apiKey?: string;
    maxBodyBytes?: number;
    cachePages?: number;
    chatFormat?: ChatFormat;
    log?: (line: string) => void;
  } = {},
): Promise<ServerFixture> {
  const engine = DecodingEngine.create(model, {
    numPages: options.numPages ?? 256,
    pageSize: options.pageSize ?? 4,
  });
  const shared = SharedTreeEngine.create(
    engine,
    options.cachePages === undefined ? {} : { cachePages: options.cachePages },
  );
  const server = await startOpenAiServer({
    shared,
    tokenizer,
    modelId: 'test-model',
    port: 0,
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
    ...(options.chatFormat === undefined ? {} : { chatFormat: options.chatFormat }),
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  return {
    server,
    shared,
    engine,
    async close() {
      await server.close();
      shared.dispose();
      engine.dispose();
    },
  };
}

/** stories260K on the CPU backend behind a server, with an engine of its own for reference runs. */
export interface Stories260KServer {
  readonly model: LlamaModel;
  readonly tokenizer: Tokenizer;
  readonly fixture: ServerFixture;
  /** A standalone engine beside the server's own. */
  readonly reference: DecodingEngine;
  /** Text of generated tokens as the server prints it (a final end-of-sequence id dropped). */
  text(tokens: readonly number[]): string;
  close(): Promise<void>;
}

/** Serves stories260K (1024 pages of 16 tokens) and opens a reference engine (512 pages) on the same model. */
export async function serveStories260K(options: { apiKey?: string } = {}): Promise<Stories260KServer> {
  const gguf = await loadGgufModel(stories260K.gguf);
  const tokenizer = gguf.tokenizer!;
  const model = LlamaModel.create(createCpuBackend(), gguf);
  const fixture = await serveModel(model, tokenizer, { numPages: 1024, pageSize: 16, ...options });
  const reference = DecodingEngine.create(model, { numPages: 512, pageSize: 16 });
  return {
    model,
    tokenizer,
    fixture,
    reference,
    text: (tokens) =>
      tokenizer.decode(tokens.at(-1) === tokenizer.eosId ? tokens.slice(0, -1) : tokens, {
        stripLeadingSpace: false,
      }),
    async close() {
      await fixture.close();
      reference.dispose();
      model.dispose();
      model.backend.dispose();
    },
  };
}

/** One HTTP exchange on a connection of its own (no keep-alive reuse): status, headers and body text. */
export function request(
  server: RunningServer,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(`${server.url}${path}`, { method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** GETs a path; resolves to the status and the parsed body. */
export async function get(
  server: RunningServer,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: ApiBody }> {
  const response = await request(server, 'GET', path, undefined, headers);
  return { status: response.status, body: JSON.parse(response.text) as ApiBody };
}

/** POSTs JSON; resolves to the status, the headers and the parsed body. */
export async function post(
  server: RunningServer,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: ApiBody }> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const response = await request(server, 'POST', path, text, {
    'content-type': 'application/json',
    ...headers,
  });
  return { status: response.status, headers: response.headers, body: JSON.parse(response.text) as ApiBody };
}

/** Parses a server-sent event stream: every `data:` payload, and whether `[DONE]` came. */
export function parseEvents(text: string): { events: ApiBody[]; done: boolean } {
  const events: ApiBody[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (!block.startsWith('data: ')) continue;
    const data = block.slice('data: '.length);
    if (data === '[DONE]') done = true;
    else events.push(JSON.parse(data) as ApiBody);
  }
  return { events, done };
}

/** Reads a server-sent event stream to its end. */
export async function readStream(
  server: RunningServer,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; contentType: string | undefined; events: ApiBody[]; done: boolean }> {
  const response = await request(server, 'POST', path, JSON.stringify(body), {
    'content-type': 'application/json',
    ...headers,
  });
  return {
    status: response.status,
    contentType: response.headers['content-type'],
    ...parseEvents(response.text),
  };
}

/** Starts a stream and disconnects after `chunks` pieces of it have arrived. */
export function abandonStream(
  server: RunningServer,
  path: string,
  body: unknown,
  chunks: number,
  headers: Record<string, string> = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      `${server.url}${path}`,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, agent: false },
      (response) => {
        let seen = 0;
        response.on('data', () => {
          if (++seen === chunks) {
            outgoing.destroy();
            resolve();
          }
        });
        response.on('end', () => reject(new Error(`the stream ended before ${chunks} chunks`)));
      },
    );
    outgoing.on('error', () => undefined);
    outgoing.end(JSON.stringify(body));
  });
}

/** Each choice's text, concatenated over the chunks of a stream. */
export function streamedTexts(events: readonly ApiBody[]): string[] {
  const texts: string[] = [];
  for (const event of events) {
    for (const choice of event.choices) {
      texts[choice.index] = (texts[choice.index] ?? '') + (choice.text ?? choice.delta?.content ?? '');
    }
  }
  return texts;
}

/** Resolves once no request runs and every released page is back (the pool holds only cached prompts). */
export async function settled(fixture: ServerFixture): Promise<void> {
  for (let attempt = 0; attempt < 200 && fixture.server.counters().activeRequests > 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await fixture.shared.whenIdle();
}
