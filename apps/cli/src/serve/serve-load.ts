import { realpathSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DecodingEngine, SharedTreeEngine } from '@deft/decoder';
import { openModelBackend } from '../backends/open-model-backend.js';
import { formatBytes } from '../format/format-number.js';
import { loadServedModel } from './load-served-model.js';
import { type RunningServer, startOpenAiServer } from './openai-server.js';

/** What one load level measured. */
export interface LoadLevel {
  readonly clients: number;
  readonly requests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly completionTokens: number;
  readonly tokensPerSecond: number;
  /** Forward passes of the shared tree, and request steps they served. */
  readonly passes: number;
  readonly sessionSteps: number;
  readonly kvBytesRead: number;
  readonly sequenceKvBytes: number;
}

/** A system prompt every request shares (about 150 tokens of stories260K's vocabulary). */
export const LOAD_SYSTEM_PROMPT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ' +
  'One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny and new. ' +
  'Lily wanted to show the ball to her mom, so she ran home as fast as she could. Her mom smiled and said ' +
  'that the ball was very pretty. Lily was happy and played with the ball all day long with her dog Max.';

function streamCompletion(server: RunningServer, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      `${server.url}/v1/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () => {
          const usage = /"completion_tokens":(\d+)/.exec(text);
          if (response.statusCode !== 200 || usage === null || !text.endsWith('data: [DONE]\n\n')) {
            reject(new Error(`request failed (${response.statusCode}): ${text.slice(0, 200)}`));
          } else resolve(Number(usage[1]));
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(JSON.stringify(body));
  });
}

/**
 * A bounded load run against a server: `clients` concurrent clients, each sending `perClient` streamed
 * greedy completions of `maxTokens` tokens one after another, every prompt the shared system prompt plus
 * a few words of its own.
 */
export async function measureLoad(
  server: RunningServer,
  shared: SharedTreeEngine,
  clients: number,
  perClient: number,
  maxTokens: number,
): Promise<LoadLevel> {
  const before = shared.stats;
  const started = performance.now();
  const tokens = await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      let total = 0;
      for (let index = 0; index < perClient; index++) {
        total += await streamCompletion(server, {
          prompt: `${LOAD_SYSTEM_PROMPT} Then friend number ${client * perClient + index + 1} came`,
          max_tokens: maxTokens,
          temperature: 0,
          ignore_eos: true,
          stream: true,
        });
      }
      return total;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const after = shared.stats;
  const completionTokens = tokens.reduce((sum, value) => sum + value, 0);
  return {
    clients,
    requests: clients * perClient,
    seconds,
    requestsPerSecond: (clients * perClient) / seconds,
    completionTokens,
    tokensPerSecond: completionTokens / seconds,
    passes: after.passes - before.passes,
    sessionSteps: after.sessionSteps - before.sessionSteps,
    kvBytesRead: after.kvBytesRead - before.kvBytesRead,
    sequenceKvBytes: after.sequenceKvBytes - before.sequenceKvBytes,
  };
}

/** One line of the load table. */
export function formatLoadLevel(level: LoadLevel): string {
  return [
    `${String(level.clients).padStart(7)}`,
    `${String(level.requests).padStart(8)}`,
    `${level.requestsPerSecond.toFixed(2).padStart(10)}`,
    `${level.tokensPerSecond.toFixed(0).padStart(8)}`,
    `${(level.sessionSteps / Math.max(1, level.passes)).toFixed(1).padStart(13)}`,
    `${formatBytes(level.kvBytesRead).padStart(9)}`,
    `${formatBytes(level.sequenceKvBytes).padStart(9)}`,
    `${(level.sequenceKvBytes / Math.max(1, level.kvBytesRead)).toFixed(2).padStart(7)}x`,
  ].join('  ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      backend: { type: 'string', default: 'cpu' },
      clients: { type: 'string', default: '1,8,32' },
      requests: { type: 'string', default: '4' },
      'max-tokens': { type: 'string', default: '32' },
    },
  });
  if (values.model === undefined)
    throw new Error(
      'usage: serve-load.ts --model FILE [--tokenizer FILE] [--backend cpu] [--clients 1,8,32] [--requests N] [--max-tokens N]',
    );
  const { opened, backend } = await openModelBackend(values.backend as 'cpu');
  const served = await loadServedModel(values.model, values.tokenizer, backend);
  const engine = DecodingEngine.create(served.model, { numPages: 2048, pageSize: 16 });
  const shared = SharedTreeEngine.create(engine);
  const server = await startOpenAiServer({
    shared,
    tokenizer: served.tokenizer,
    modelId: served.id,
    port: 0,
  });
  try {
    const perClient = Number(values.requests);
    const maxTokens = Number(values['max-tokens']);
    console.log(
      `${served.id} on ${opened.description}: each client sends ${perClient} streamed greedy completions of ${maxTokens} tokens, ` +
        'prompts = a shared ~150-token story + a few words of their own',
    );
    console.log('clients  requests  requests/s  tokens/s  requests/pass  KV read   seq. KV   saved');
    for (const clients of values.clients.split(',').map(Number)) {
      console.log(formatLoadLevel(await measureLoad(server, shared, clients, perClient, maxTokens)));
    }
  } finally {
    await server.close();
    shared.dispose();
    engine.dispose();
    served.model.dispose();
    opened.dispose();
  }
}

function isEntryPoint(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main();
