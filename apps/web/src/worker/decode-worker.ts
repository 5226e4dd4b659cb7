// The decoding worker: loads a model onto WebGPU, runs one search at a time and reports the tree after
// every forward pass. Only the packages' browser entry points are imported here.
import { type DecodeEvent, DecodingEngine } from '@deft/decoder';
import { createWebGpuBackend, requestWebGpuDevice, type WebGpuBackend } from '@deft/kernels-webgpu';
import { LlamaModel, type Tokenizer } from '@deft/model';
import type { RunSettings } from '../app/run-settings.js';
import { loadModelFiles } from './load-model-files.js';
import { pagesNeeded, startSearch } from './search.js';
import { type ViewedSession, viewedOpener } from './viewed-opener.js';
import type { LiveStats, WorkerEvent, WorkerRequest } from './worker-messages.js';

/** The part of the worker's global scope used here (the DOM library's types describe a window). */
interface WorkerScope {
  postMessage(event: WorkerEvent): void;
  onmessage: ((message: MessageEvent<WorkerRequest>) => void) | null;
}

const scope = self as unknown as WorkerScope;
const post = (event: WorkerEvent) => scope.postMessage(event);

interface Loaded {
  readonly backend: WebGpuBackend;
  readonly model: LlamaModel;
  readonly tokenizer: Tokenizer;
  dispose(): void;
}

/** Tokens per KV page. */
const PAGE_SIZE = 16;

let loaded: Loaded | undefined;
let stopRequested = false;

async function load(request: Extract<WorkerRequest, { type: 'load' }>): Promise<void> {
  loaded?.dispose();
  loaded = undefined;
  post({ type: 'status', text: 'opening WebGPU…' });
  const handle = await requestWebGpuDevice();
  let backend: WebGpuBackend | undefined;
  try {
    backend = createWebGpuBackend({ device: handle.device });
    const files = await loadModelFiles(request.model, request.tokenizer, (text) =>
      post({ type: 'status', text }),
    );
    const model = LlamaModel.create(backend, files.checkpoint);
    const created = backend;
    loaded = {
      backend: created,
      model,
      tokenizer: files.tokenizer,
      dispose() {
        model.dispose();
        created.dispose();
        handle.dispose();
      },
    };
    const { config } = model;
    post({
      type: 'loaded',
      description:
        `${files.name}: ${config.numLayers} layers, dim ${config.dim}, ${config.numHeads}/${config.numKvHeads} heads, ` +
        `vocabulary ${config.vocabSize}, context ${config.contextLength}; WebGPU on ${handle.description}`,
    });
  } catch (error) {
    backend?.dispose();
    handle.dispose();
    throw error;
  }
}

async function run(settings: RunSettings): Promise<void> {
  if (loaded === undefined) throw new Error('load a model first');
  const { model, tokenizer } = loaded;
  stopRequested = false;
  // The pool is sized for the run (each sequence owning its whole path), not for the model's context.
  const promptLength = tokenizer.encode(settings.prompt).length;
  const numPages = pagesNeeded(settings, promptLength, model.config.contextLength, PAGE_SIZE);
  const engine = DecodingEngine.create(model, { numPages, pageSize: PAGE_SIZE });
  let opened: ViewedSession | undefined;
  const opener = viewedOpener(engine, (session) => {
    opened = session;
  });
  const decode = (tokens: readonly number[]) => tokenizer.decode(tokens, { stripLeadingSpace: false });
  const snapshot = () =>
    opened?.view.snapshot(decode, (node) =>
      opened?.session.released === false ? opened.session.runner.cache.pagesOf(node).length : 0,
    ) ?? [];
  const totals = { kvBytesRead: 0, sequenceKvBytes: 0, generatedTokens: 0 };
  const started = performance.now();
  const liveStats = (event: DecodeEvent): LiveStats => {
    totals.kvBytesRead += event.stats.kvBytesRead;
    totals.sequenceKvBytes += event.stats.sequenceKvBytes;
    for (const entry of event.tokens) totals.generatedTokens += entry.tokens.length;
    const seconds = (performance.now() - started) / 1000;
    return {
      step: event.step,
      generatedTokens: totals.generatedTokens,
      tokensPerSecond: seconds > 0 ? totals.generatedTokens / seconds : 0,
      kvBytesRead: totals.kvBytesRead,
      sequenceKvBytes: totals.sequenceKvBytes,
      pagesUsed: event.stats.pagesUsed,
      pagesShared: event.stats.pagesShared,
      treeNodes: event.stats.treeNodes,
      leaves: event.stats.leaves,
    };
  };
  const search = startSearch(opener, tokenizer, settings);
  let stats: LiveStats | undefined;
  try {
    for (;;) {
      const next = await search.next();
      // A stop that arrives as the search completes keeps its result.
      if (stopRequested && next.done !== true) {
        // Ends the strategy where it stands: its `finally` releases the session, so every page is freed.
        await search.return([]);
        post({ type: 'stopped', nodes: snapshot(), pagesInUse: engine.pool.usedCount });
        return;
      }
      if (next.done === true) {
        const kept = opened?.view.markKept(next.value, decode) ?? [];
        const finalStats = { ...stats!, pagesUsed: engine.pool.usedCount, leaves: kept.length };
        post({ type: 'done', nodes: snapshot(), stats: finalStats, kept, pagesInUse: engine.pool.usedCount });
        return;
      }
      stats = liveStats(next.value);
      post({ type: 'step', nodes: snapshot(), stats });
    }
  } finally {
    opened?.view.detach();
    engine.dispose();
  }
}

// Requests run one after another; `stop` acts at once, between two forward passes.
let queue = Promise.resolve();
scope.onmessage = (message: MessageEvent<WorkerRequest>) => {
  const request = message.data;
  if (request.type === 'stop') {
    stopRequested = true;
    return;
  }
  queue = queue
    .then(() => (request.type === 'load' ? load(request) : run(request.settings)))
    .catch((error: unknown) =>
      post({ type: 'error', message: error instanceof Error ? error.message : String(error) }),
    );
};
