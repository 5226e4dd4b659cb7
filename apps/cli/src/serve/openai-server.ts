import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CapacityError, InvalidArgumentError } from '@deft/core';
import type { SharedTreeEngine } from '@deft/decoder';
import type { Tokenizer } from '@deft/model';
import { ApiError, invalidField } from '../errors/api-error.js';
import { type ChatFormat, plainChatFormat } from './chat-format.js';
import { type CompletionRequest, parseCompletionRequest } from './completion-request.js';
import { ChunkWriter, completionResponse, type ResponseContext } from './openai-format.js';
import { runCompletion } from './run-completion.js';

/** Options of {@link startOpenAiServer}. */
export interface OpenAiServerOptions {
  /** The one engine every request decodes on. */
  readonly shared: SharedTreeEngine;
  readonly tokenizer: Tokenizer;
  /** The model's id in responses and `GET /v1/models`. */
  readonly modelId: string;
  /** Interface to listen on (default `127.0.0.1`: this machine only). */
  readonly host?: string;
  /** Port (default 8080; 0 picks a free one). */
  readonly port?: number;
  /** When set, every `/v1/*` request needs `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); larger ones get 413. */
  readonly maxBodyBytes?: number;
  /** How chat messages become a prompt (default: {@link plainChatFormat} over `tokenizer`). */
  readonly chatFormat?: ChatFormat;
  /** Seconds a 503 tells the client to wait before retrying (default 1). */
  readonly retryAfterSeconds?: number;
  /** Where unexpected errors are reported (default: nowhere). */
  readonly log?: (line: string) => void;
}

/** What the server counted, as `GET /health` reports it. */
export interface ServerCounters {
  readonly activeRequests: number;
  readonly completedRequests: number;
  readonly cancelledRequests: number;
  readonly rejectedRequests: number;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  counters(): ServerCounters;
  /** Stops listening, cancels running requests (their pages go back) and closes every connection. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 1 << 20;

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

function sendError(response: ServerResponse, error: ApiError): void {
  if (response.headersSent) return;
  sendJson(
    response,
    error.status,
    error.toBody(),
    error.retryAfterSeconds === undefined ? {} : { 'retry-after': String(error.retryAfterSeconds) },
  );
}

/** A 400 for a prompt the server cannot hold, naming the field the prompt came in. */
function contextLengthExceeded(message: string, endpoint: 'completions' | 'chat'): ApiError {
  return new ApiError(message, {
    status: 400,
    type: 'invalid_request_error',
    param: endpoint === 'chat' ? 'messages' : 'prompt',
    errorCode: 'context_length_exceeded',
  });
}

/** Reads a body up to `limit` bytes. @throws ApiError 413 beyond it. */
async function readBody(request: IncomingMessage, limit: number): Promise<string> {
  const tooLarge = () =>
    new ApiError(`the request body is larger than ${limit} bytes`, {
      status: 413,
      type: 'invalid_request_error',
      errorCode: 'request_too_large',
    });
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of request) {
      size += (chunk as Buffer).length;
      if (size > limit) throw tooLarge();
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (ApiError.isInstance(error)) throw error;
    // The client went away mid-body (`aborted`): its fault, not the server's.
    throw new ApiError(`the request body was cut short: ${(error as Error).message}`, {
      status: 400,
      type: 'invalid_request_error',
      errorCode: 'incomplete_body',
    });
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Starts an OpenAI-compatible HTTP server (Node's `http`) over one {@link SharedTreeEngine}:
 * `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`. Concurrent
 * requests decode in the same forward passes of one token tree; a disconnected client's sessions are
 * released at once; a full page pool answers 503 with `Retry-After`.
 *
 * @example
 * ```ts
 * const server = await startOpenAiServer({ shared, tokenizer, modelId: 'stories260K', port: 0 });
 * await fetch(`${server.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'Once' }) });
 * await server.close();
 * ```
 */
export async function startOpenAiServer(options: OpenAiServerOptions): Promise<RunningServer> {
  const { shared, tokenizer, modelId } = options;
  const host = options.host ?? '127.0.0.1';
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const chatFormat = options.chatFormat ?? plainChatFormat(tokenizer);
  const retryAfterSeconds = options.retryAfterSeconds ?? 1;
  const created = Math.floor(Date.now() / 1000);
  const running = new Set<AbortController>();
  const counters = { completedRequests: 0, cancelledRequests: 0, rejectedRequests: 0 };

  const health = () => {
    const pool = shared.engine.pool;
    const stats = shared.stats;
    return {
      status: 'ok',
      model: modelId,
      requests: { active: running.size, ...counters },
      pool: {
        pages: pool.numPages,
        page_size: pool.pageSize,
        used: pool.usedCount,
        free: pool.freeCount,
        cached: shared.cachedPages,
      },
      tree: {
        sessions: shared.sessionCount,
        passes: stats.passes,
        session_steps: stats.sessionSteps,
        max_sessions_per_pass: stats.maxSessionsPerPass,
        queries: stats.queries,
        kv_bytes_read: stats.kvBytesRead,
        sequence_kv_bytes: stats.sequenceKvBytes,
        kv_bytes_saved: stats.sequenceKvBytes - stats.kvBytesRead,
        prompt_tokens: stats.promptTokens,
        reused_prompt_tokens: stats.reusedPromptTokens,
      },
    };
  };

  const modelObject = { id: modelId, object: 'model', created, owned_by: 'deft' };

  const promptOf = (request: CompletionRequest): number[] => {
    const vocabSize = tokenizer.vocabSize;
    if (request.prompt !== undefined && 'tokens' in request.prompt) {
      const bad = request.prompt.tokens.findIndex((token) => token >= vocabSize);
      if (bad >= 0) {
        throw invalidField(
          'prompt',
          `prompt[${bad}] is not a token id of the model (vocabulary ${vocabSize})`,
        );
      }
      return [...request.prompt.tokens];
    }
    if (request.prompt !== undefined) return tokenizer.encode(request.prompt.text);
    return chatFormat.encode(request.messages!);
  };

  async function complete(
    endpoint: 'completions' | 'chat',
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    const text = await readBody(request, maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      throw new ApiError(`the request body is not valid JSON: ${(error as Error).message}`, {
        status: 400,
        type: 'invalid_request_error',
        errorCode: 'invalid_json',
      });
    }
    const parsed = parseCompletionRequest(endpoint, body);
    const prompt = promptOf(parsed);
    // A prompt that needs more pages than the whole pool would be refused with 503 forever.
    const pool = shared.engine.pool;
    const promptPages = Math.ceil(prompt.length / pool.pageSize);
    if (promptPages > pool.numPages) {
      throw contextLengthExceeded(
        `the prompt needs ${promptPages} KV pages but this server's pool has ${pool.numPages} in all; ` +
          'shorten the prompt, or start the server with more --pages',
        endpoint,
      );
    }
    const context: ResponseContext = {
      id: `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`,
      created: Math.floor(Date.now() / 1000),
      model: modelId,
      endpoint,
    };
    const controller = new AbortController();
    running.add(controller);
    response.on('close', () => {
      if (!response.writableFinished) controller.abort();
    });
    const writer = new ChunkWriter(context, parsed.logprobs);
    const send = (chunk: unknown) => {
      if (!response.writableEnded && !response.destroyed)
        response.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    const startStream = () => {
      if (response.headersSent) return;
      response.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      for (const chunk of writer.roleChunks(parsed.n)) send(chunk);
    };
    try {
      const outcome = await runCompletion({
        shared,
        tokenizer,
        request: parsed,
        prompt,
        templateStops: endpoint === 'chat' ? chatFormat.stop : [],
        signal: controller.signal,
        ...(parsed.stream
          ? {
              onDelta: (delta) => {
                startStream();
                send(writer.deltaChunk(delta));
              },
            }
          : {}),
      });
      if (!outcome.completed) {
        counters.cancelledRequests++;
        return;
      }
      counters.completedRequests++;
      if (!parsed.stream) {
        sendJson(response, 200, completionResponse(context, outcome, parsed.logprobs));
        return;
      }
      startStream();
      if (parsed.includeUsage) send(writer.usageChunk(outcome));
      response.end('data: [DONE]\n\n');
    } catch (error) {
      if (!response.headersSent) throw error;
      // Streaming already started: the error goes in the stream, then the stream ends.
      const apiError = toApiError(error, endpoint);
      send(apiError.toBody());
      response.end('data: [DONE]\n\n');
    } finally {
      running.delete(controller);
    }
  }

  const toApiError = (error: unknown, endpoint: 'completions' | 'chat'): ApiError => {
    if (ApiError.isInstance(error)) return error;
    if (CapacityError.isInstance(error)) {
      return new ApiError(`the KV page pool is full: ${error.message}`, {
        status: 503,
        type: 'server_overloaded',
        errorCode: 'kv_pool_full',
        retryAfterSeconds,
      });
    }
    if (InvalidArgumentError.isInstance(error) && error.argument === 'messages') {
      // The model's chat template refused the conversation (e.g. roles that do not alternate).
      return new ApiError(error.message, {
        status: 400,
        type: 'invalid_request_error',
        param: 'messages',
        errorCode: 'invalid_value',
      });
    }
    if (InvalidArgumentError.isInstance(error) && error.argument === 'prompt') {
      return contextLengthExceeded(error.message, endpoint);
    }
    options.log?.(
      `deft serve: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    return new ApiError('the server failed to complete the request', { status: 500, type: 'server_error' });
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const method = request.method ?? 'GET';
    const route = (allowed: string) => {
      if (method !== allowed) {
        response.setHeader('allow', allowed);
        throw new ApiError(`${path} takes ${allowed}, not ${method}`, {
          status: 405,
          type: 'invalid_request_error',
          errorCode: 'method_not_allowed',
        });
      }
    };
    if (path === '/health') {
      route('GET');
      sendJson(response, 200, health());
      return;
    }
    if (!path.startsWith('/v1/')) {
      throw new ApiError(
        `no route ${method} ${path}; see /v1/models, /v1/completions, /v1/chat/completions, /health`,
        {
          status: 404,
          type: 'not_found_error',
          errorCode: 'unknown_url',
        },
      );
    }
    if (options.apiKey !== undefined) {
      const header = request.headers.authorization ?? '';
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (match === null || !sameKey(match[1]!.trim(), options.apiKey)) {
        response.setHeader('www-authenticate', 'Bearer');
        throw new ApiError('missing or wrong API key: send Authorization: Bearer <key>', {
          status: 401,
          type: 'authentication_error',
          errorCode: 'invalid_api_key',
        });
      }
    }
    if (path === '/v1/models') {
      route('GET');
      sendJson(response, 200, { object: 'list', data: [modelObject] });
    } else if (path.startsWith('/v1/models/')) {
      route('GET');
      const raw = path.slice('/v1/models/'.length);
      let id: string;
      try {
        id = decodeURIComponent(raw);
      } catch {
        id = raw; // malformed percent-encoding: no model has that id
      }
      if (id !== modelId) {
        throw new ApiError(`model '${id}' is not served here; this server serves '${modelId}'`, {
          status: 404,
          type: 'not_found_error',
          param: 'model',
          errorCode: 'model_not_found',
        });
      }
      sendJson(response, 200, modelObject);
    } else if (path === '/v1/completions') {
      route('POST');
      await complete('completions', request, response);
    } else if (path === '/v1/chat/completions') {
      route('POST');
      await complete('chat', request, response);
    } else {
      throw new ApiError(`no route ${method} ${path}`, {
        status: 404,
        type: 'not_found_error',
        errorCode: 'unknown_url',
      });
    }
  }

  const tasks = new Set<Promise<void>>();
  const server: Server = createServer((request, response) => {
    const task = handle(request, response).catch((error: unknown) => {
      const endpoint = request.url?.includes('/chat/') ? 'chat' : 'completions';
      const apiError = toApiError(error, endpoint);
      if (apiError.status === 413 || apiError.status === 503) counters.rejectedRequests++;
      // A body we stopped reading cannot be followed by another request on this connection.
      if (apiError.status === 413) response.setHeader('connection', 'close');
      sendError(response, apiError);
      if (apiError.status === 413) response.on('finish', () => request.destroy());
    });
    tasks.add(task);
    void task.finally(() => tasks.delete(task));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    counters: () => ({ activeRequests: running.size, ...counters }),
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const controller of running) controller.abort();
        server.closeAllConnections();
        await Promise.all([closed, ...tasks]);
        // Releases asked for during a pass take effect when it ends.
        await shared.whenIdle();
      })();
      return closing;
    },
  };
}
