import { PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { DecodingEngine, SharedTreeEngine } from '@deft/decoder';
import type { LlamaModel } from '@deft/model';
import type { BackendName, OpenedBackend } from '../backends/open-backend.js';
import { openModelBackend } from '../backends/open-model-backend.js';
import { type CliIo, processIo } from '../cli/cli-io.js';
import { choiceOption, integerOption, parseCommandLine, stringOption } from '../cli/parse-command-line.js';
import { UsageError } from '../errors/usage-error.js';
import { modelFileOptions } from '../model-files/model-paths.js';
import { loadServedModel } from '../serve/load-served-model.js';
import { type RunningServer, startOpenAiServer } from '../serve/openai-server.js';

const BACKENDS = ['auto', 'cpu', 'webgpu', 'cuda'] as const satisfies readonly (BackendName | 'auto')[];

const HELP = `Usage: deft serve --model FILE [--tokenizer FILE] [--backend auto|cpu|webgpu|cuda]
                  [--host 127.0.0.1] [--port 8080] [--api-key KEY] [options]

An OpenAI-compatible HTTP server (Node's http, no framework) over one decoding engine: the sequences of
every concurrent request live in one token tree and decode in the same forward passes (continuous
batching: requests join and leave between passes), so a shared prompt prefix (a common system prompt, the
n choices of one request) is read once per pass. Finished prompts stay in the tree as a prefix cache.

Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health (pool, passes,
KV bytes read against the sequence baseline). Parameters: max_tokens, temperature, top_p, top_k, seed, n,
best_of, logprobs / top_logprobs, stop, stream (server-sent events, then [DONE]), and the extensions
beam_width, length_penalty, speculative (draft_length, draft_branches) and ignore_eos.

Options:
  -m, --model FILE        model file: .gguf, or a llama2.c checkpoint (.bin) with --tokenizer
  -t, --tokenizer FILE    a Hugging Face tokenizer.json or a llama2.c tokenizer (tok512.bin);
                          a GGUF carries its own
  --backend B             ${BACKENDS.join(', ')} (default auto: a GPU backend with model ops, else the CPU)
  --host H                interface to listen on (default 127.0.0.1: this machine only)
  --port N                port (default 8080; 0 picks a free one)
  --api-key KEY           require Authorization: Bearer KEY on /v1/* (default: none; also DEFT_API_KEY)
  --pages N               KV pages in the pool shared by every request (default 1024)
  --page-size N           tokens per KV page (default 16)
  --cache-pages N         pages finished prompts may keep for reuse (default: a quarter of --pages)
  --kv-dtype D            f32 or f16 (default f32)
  --plan-strategy S       ${PLAN_STRATEGIES.join(', ')} (default deft-flatten)
  --max-body-bytes N      largest request body (default 1048576); larger ones get 413
  -q, --quiet             no start-up line
  -h, --help              show this help

A request whose prompt does not fit in the free pages (after evicting cached prompts) gets 503 with
Retry-After; a client that disconnects frees its pages before the next pass.

Example:
  pnpm deft serve -m ../shared/models/stories260K/stories260K.gguf --port 8080
  curl -s localhost:8080/v1/completions -H 'content-type: application/json' \\
    -d '{"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}'
`;

/** Hooks for running the server in-process (tests). */
export interface ServeHooks {
  /** Stops the server when aborted (default: SIGINT or SIGTERM). */
  readonly signal?: AbortSignal;
  /** Called once the server listens. */
  readonly onListening?: (server: RunningServer) => void;
}

/** Resolves when the signal aborts, or on SIGINT / SIGTERM without one. */
function stopRequested(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal !== undefined) {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/**
 * `deft serve`: loads a model and serves the OpenAI API until stopped; resolves to the exit code.
 *
 * @param argv Arguments after `deft serve`.
 * @example
 * ```ts
 * process.exitCode = await runServe(['--model', 'stories260K.gguf', '--port', '8080']);
 * ```
 */
export async function runServe(
  argv: readonly string[],
  io: CliIo = processIo(),
  hooks: ServeHooks = {},
): Promise<number> {
  const { help, values } = parseCommandLine('serve', argv, {
    model: { type: 'string', short: 'm' },
    tokenizer: { type: 'string', short: 't' },
    backend: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    pages: { type: 'string' },
    'page-size': { type: 'string' },
    'cache-pages': { type: 'string' },
    'kv-dtype': { type: 'string' },
    'plan-strategy': { type: 'string' },
    'max-body-bytes': { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const { modelPath, tokenizerPath } = modelFileOptions(values, io, 'serve');
  const backendName = choiceOption(values, 'backend', BACKENDS) ?? 'auto';
  const host = stringOption(values, 'host') ?? '127.0.0.1';
  const port = integerOption(values, 'port', 0) ?? 8080;
  if (port > 65535) {
    throw new UsageError(`--port must be at most 65535, got ${port}`, { argument: '--port' });
  }
  const apiKey = stringOption(values, 'api-key') ?? (process.env.DEFT_API_KEY || undefined);
  const numPages = integerOption(values, 'pages', 1) ?? 1024;
  const pageSize = integerOption(values, 'page-size', 1) ?? 16;
  const cachePages = integerOption(values, 'cache-pages', 0);
  const kvDtype = choiceOption(values, 'kv-dtype', ['f32', 'f16'] as const) ?? 'f32';
  const planStrategy: PlanStrategy = choiceOption(values, 'plan-strategy', PLAN_STRATEGIES) ?? 'deft-flatten';
  const maxBodyBytes = integerOption(values, 'max-body-bytes', 1);

  let opened: OpenedBackend | undefined;
  let model: LlamaModel | undefined;
  let engine: DecodingEngine | undefined;
  let shared: SharedTreeEngine | undefined;
  let server: RunningServer | undefined;
  try {
    const backend = await openModelBackend(backendName);
    opened = backend.opened;
    const served = await loadServedModel(modelPath, tokenizerPath, backend.backend);
    model = served.model;
    engine = DecodingEngine.create(model, {
      numPages,
      pageSize,
      kvDtype,
      planner: { strategy: planStrategy },
    });
    shared = SharedTreeEngine.create(engine, cachePages === undefined ? {} : { cachePages });
    server = await startOpenAiServer({
      shared,
      tokenizer: served.tokenizer,
      modelId: served.id,
      host,
      port,
      chatFormat: served.chatFormat,
      ...(apiKey === undefined ? {} : { apiKey }),
      ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
      log: (line) => io.stderr(`${line}\n`),
    });
    if (values.quiet !== true) {
      io.stderr(
        `deft serve: ${served.id} on ${opened.description} at ${server.url} (OpenAI API under /v1; ` +
          `${numPages} KV pages of ${pageSize} tokens; chat template: ${served.chatFormat.name}` +
          `${apiKey === undefined ? '' : '; API key required'})\n`,
      );
    }
    hooks.onListening?.(server);
    await stopRequested(hooks.signal);
    return 0;
  } finally {
    await server?.close();
    shared?.dispose();
    engine?.dispose();
    model?.dispose();
    opened?.dispose();
  }
}
