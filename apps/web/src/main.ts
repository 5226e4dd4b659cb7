import { type RunSettings, runSettingsProblem, type StrategyChoice } from './app/run-settings.js';
import { readUrlRequest } from './app/url-params.js';
import { renderStats } from './view/stats-view.js';
import { renderTree } from './view/tree-view.js';
import type {
  FileSource,
  KeptSequence,
  ViewNode,
  WorkerEvent,
  WorkerRequest,
} from './worker/worker-messages.js';

function byId<Type extends HTMLElement>(id: string): Type {
  return document.getElementById(id) as Type;
}

const input = (id: string) => byId<HTMLInputElement>(id);
const statusLine = byId<HTMLSpanElement>('status');
const result = byId<HTMLOutputElement>('result');
const runButton = byId<HTMLButtonElement>('run');
const stopButton = byId<HTMLButtonElement>('stop');
const strategySelect = byId<HTMLSelectElement>('strategy');
const tree = document.getElementById('tree') as unknown as SVGSVGElement;
const stats = byId<HTMLElement>('stats');

const request = readUrlRequest(new URL(location.href));
if (!('gpu' in navigator)) byId('webgpu-missing').hidden = false;

function showSettings(settings: RunSettings): void {
  input('prompt').value = settings.prompt;
  strategySelect.value = settings.strategy;
  input('width').value = String(settings.width);
  input('temperature').value = String(settings.temperature);
  input('seed').value = String(settings.seed);
  input('max-tokens').value = String(settings.maxTokens);
}

function readSettings(): RunSettings {
  return {
    prompt: input('prompt').value,
    strategy: strategySelect.value as StrategyChoice,
    width: input('width').valueAsNumber,
    temperature: input('temperature').valueAsNumber,
    seed: input('seed').valueAsNumber,
    maxTokens: input('max-tokens').valueAsNumber,
  };
}

/** The picked file, else the URL typed in, else nothing. */
function readSource(fileId: string, urlId: string): FileSource | undefined {
  const file = input(fileId).files?.[0];
  if (file !== undefined) return { kind: 'file', file };
  const url = input(urlId).value.trim();
  return url === '' ? undefined : { kind: 'url', url: new URL(url, location.href).href };
}

function setResult(
  state: 'running' | 'done' | 'stopped' | 'error',
  text: string,
  kept: readonly KeptSequence[] = [],
) {
  result.dataset.status = state;
  result.dataset.tokens = JSON.stringify(kept[0]?.tokens ?? []);
  result.dataset.sequences = JSON.stringify(kept.map((sequence) => sequence.tokens));
  result.textContent = text;
}

// Redraw at most once a frame, however fast the steps come.
let pending: { nodes: readonly ViewNode[]; kept: readonly KeptSequence[] } | undefined;
function scheduleTree(nodes: readonly ViewNode[], kept: readonly KeptSequence[] = []): void {
  const first = pending === undefined;
  pending = { nodes, kept };
  if (first) {
    requestAnimationFrame(() => {
      if (pending !== undefined) renderTree(tree, pending.nodes, pending.kept);
      pending = undefined;
    });
  }
}

const worker = new Worker(new URL('./worker/decode-worker.ts', import.meta.url), { type: 'module' });
const send = (message: WorkerRequest) => worker.postMessage(message);
let running = false;
let autorun = request.autorun;

function setRunning(value: boolean): void {
  running = value;
  runButton.disabled = value;
  stopButton.disabled = !value;
}

worker.onmessage = (message: MessageEvent<WorkerEvent>) => {
  const event = message.data;
  switch (event.type) {
    case 'status':
      statusLine.textContent = event.text;
      return;
    case 'loaded':
      statusLine.textContent = event.description;
      runButton.disabled = false;
      if (autorun) {
        autorun = false;
        startRun();
      }
      return;
    case 'step':
      scheduleTree(event.nodes);
      renderStats(stats, event.stats);
      return;
    case 'done': {
      setRunning(false);
      scheduleTree(event.nodes, event.kept);
      renderStats(stats, { ...event.stats, pagesUsed: event.pagesInUse, pagesShared: 0 });
      const kept = event.kept.map(
        (sequence, index) => `[${index + 1}] ${sequence.score.toFixed(3)} ${sequence.text}`,
      );
      setResult(
        'done',
        `${input('prompt').value}${event.kept[0]?.text ?? ''}\n\n${kept.join('\n')}`,
        event.kept,
      );
      return;
    }
    case 'stopped':
      setRunning(false);
      scheduleTree(event.nodes);
      setResult('stopped', `stopped; KV pages in use: ${event.pagesInUse}`);
      return;
    case 'error':
      showError(event.message);
      return;
  }
};
// An error the worker did not catch (it posts no event then): reported as the worker's own errors are.
worker.onerror = (error: ErrorEvent) => {
  error.preventDefault();
  showError(`the decoding worker failed: ${error.message || 'unknown error'}`);
};

function showError(message: string): void {
  setRunning(false);
  runButton.disabled = false;
  statusLine.textContent = 'error';
  setResult('error', message);
  result.dataset.error = message;
}

function startRun(): void {
  if (running) return;
  const settings = readSettings();
  const problem = runSettingsProblem(settings);
  if (problem !== undefined) {
    setResult('error', problem);
    result.dataset.error = problem;
    return;
  }
  setRunning(true);
  setResult('running', 'decoding…');
  send({ type: 'run', settings });
}

byId<HTMLFormElement>('model-form').addEventListener('submit', (submit) => {
  submit.preventDefault();
  const model = readSource('model-file', 'model-url');
  if (model === undefined) {
    statusLine.textContent = 'choose a model file or type its URL';
    return;
  }
  const tokenizer = readSource('tokenizer-file', 'tokenizer-url');
  runButton.disabled = true;
  send(tokenizer === undefined ? { type: 'load', model } : { type: 'load', model, tokenizer });
});
byId<HTMLFormElement>('run-form').addEventListener('submit', (submit) => {
  submit.preventDefault();
  startRun();
});
stopButton.addEventListener('click', () => send({ type: 'stop' }));

showSettings(request.settings);
if (request.problem !== undefined) {
  // Nothing loads or runs from a URL that asks for something else than it says.
  setResult('error', request.problem);
  result.dataset.error = request.problem;
} else if (request.modelUrl !== undefined) {
  input('model-url').value = request.modelUrl;
  if (request.tokenizerUrl !== undefined) input('tokenizer-url').value = request.tokenizerUrl;
  byId<HTMLFormElement>('model-form').requestSubmit();
}
