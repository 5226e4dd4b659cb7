/**
 * Speculative decoding benchmark on stories260K (CPU or WebGPU backend): for each drafter and draft-tree
 * budget, accepted draft tokens per verification pass, draft and verify time, and the wall-time speed-up
 * over plain greedy decoding of the same tokens, measured in the same run.
 *
 *   npx tsx --conditions=source packages/decoder/bench/speculative-bench.ts [--backend cpu|webgpu]
 *     [--tokens N] [--json FILE] [--budgets 8,32,64] [--layers 1,2,3,4] [--min-probability 0.01]
 *     [--no-baselines] [--model-dir DIR]
 *
 * `--backend webgpu` opens a device with `@deft/kernels-webgpu` (in Node, Dawn from the `webgpu`
 * package, on whatever adapter the Vulkan driver search finds) and records the adapter in the output;
 * the decoder does not depend on that package, so it is loaded from the workspace by path.
 *
 * `--budgets` are the self-drafters' draft-tree node budgets (the paper's speculative trees hold 32–256
 * tokens; pass `--min-probability 0` to let the drafter fill large budgets); `--no-baselines` skips the
 * prompt-lookup and target-as-its-own-draft rows.
 *
 * The model is read from `--model-dir`, by default `../shared/models/stories260K/` (relative to the
 * repository root).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ModelBackend } from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import { LlamaModel, loadLlama2cCheckpoint, loadLlama2cTokenizer } from '@deft/model';
import type { Drafter } from '../src/draft/drafter.js';
import { ModelDrafter, type ModelDrafterOptions } from '../src/draft/model-drafter.js';
import { promptLookupDrafter } from '../src/draft/prompt-lookup-draft.js';
import { selfDraftCheckpoint } from '../src/draft/self-draft.js';
import { DecodingEngine } from '../src/engine/decoding-engine.js';
import { generate } from '../src/strategies/generate.js';
import { runStrategy } from '../src/strategies/run-strategy.js';
import { speculativeDecode } from '../src/strategies/speculative-decode.js';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '200' },
    json: { type: 'string' },
    budgets: { type: 'string', default: '8,32,64' },
    layers: { type: 'string', default: '1,2,3,4' },
    'min-probability': { type: 'string', default: '0.01' },
    'no-baselines': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'cpu' },
    'model-dir': { type: 'string' },
  },
});
if (values.backend !== 'cpu' && values.backend !== 'webgpu') {
  throw new Error(`--backend must be cpu or webgpu, got ${values.backend}`);
}
const maxTokens = Number(values.tokens);
const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const directory = path.resolve(
  values['model-dir'] ?? path.resolve(repositoryRoot, '../shared/models/stories260K'),
);
const checkpoint = await loadLlama2cCheckpoint(path.join(directory, 'stories260K.bin'));
const tokenizer = await loadLlama2cTokenizer(path.join(directory, 'tok512.bin'));
/** The backend, what it runs on (as the adapter reports it), and what releases it. */
async function openBackend(): Promise<{ backend: ModelBackend; device: unknown; close(): void }> {
  if (values.backend === 'cpu') {
    const backend = createCpuBackend();
    return { backend, device: 'CPU reference backend', close: () => backend.dispose() };
  }
  // A literal path, so the bench also bundles into one file for a GPU machine (../shared/gpu/prepare.sh).
  const webgpu = await import('../../kernels-webgpu/src/index.js');
  const handle = await webgpu.requestWebGpuDevice();
  const backend = webgpu.createWebGpuBackend({ device: handle.device });
  const { vendor, architecture, device, description } = handle.adapter.info;
  return {
    backend,
    device: {
      description: handle.description,
      vendor,
      architecture,
      device,
      adapterDescription: description,
      isFallbackAdapter: (handle.adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? null,
    },
    close: () => {
      backend.dispose();
      handle.dispose();
    },
  };
}
const opened = await openBackend();
const backend = opened.backend;
console.log(`backend ${values.backend}: ${JSON.stringify(opened.device)}`);
const target = LlamaModel.create(backend, checkpoint);
const engine = DecodingEngine.create(target, { numPages: 2048 });
const prompts = [
  'Once upon a time, there was a little girl named Lily.',
  'Tom and his dog went to the park. They',
  'One day, a big bear',
].map((text) => [1, ...tokenizer.encode(text)]);

interface Row {
  drafter: string;
  budget: number | null;
  temperature: number;
  tokens: number;
  passes: number;
  acceptedPerPass: number;
  proposedPerPass: number;
  tokensPerPass: number;
  draftMsPerPass: number;
  verifyMsPerPass: number;
  plainMsPerToken: number;
  speculativeMsPerToken: number;
  speedup: number;
}

const rows: Row[] = [];
const startedAt = new Date().toISOString();
/** The machine's 1-, 5- and 15-minute load averages when the run started (times depend on it). */
const loadAtStart = os.loadavg();
const list = (text: string) => text.split(',').map(Number);
const budgets = list(values.budgets);
const minProbability = Number(values['min-probability']);

/** Writes the rows so far to `--json` (after every row, so an interrupted run keeps what it measured). */
function writeResults(complete: boolean): void {
  if (values.json === undefined) return;
  const results = {
    model: 'stories260K',
    backend: values.backend,
    device: opened.device,
    maxTokens,
    budgets,
    layers: list(values.layers),
    minProbability,
    baselines: !values['no-baselines'],
    cpus: os.cpus().length,
    startedAt,
    loadAtStart,
    finishedAt: complete ? new Date().toISOString() : null,
    loadAtEnd: os.loadavg(),
    rows,
  };
  writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
}
async function measure(
  name: string,
  budget: number | null,
  drafter: Drafter,
  temperature = 0,
): Promise<void> {
  let tokens = 0;
  let passes = 0;
  let accepted = 0;
  let proposed = 0;
  let draftMs = 0;
  let verifyMs = 0;
  let plainMs = 0;
  let speculativeMs = 0;
  for (const [index, prompt] of prompts.entries()) {
    const sampling = { temperature, seed: index };
    let start = performance.now();
    const plain = await runStrategy(generate(engine, { prompt, maxTokens, sampling }));
    plainMs += performance.now() - start;
    start = performance.now();
    const result = await runStrategy(
      speculativeDecode(engine, { prompt, maxTokens, draft: drafter, sampling }),
    );
    speculativeMs += performance.now() - start;
    // Sampled runs draw other random numbers than plain sampling: only greedy outputs must be equal.
    if (temperature === 0 && result.sequence.tokens.join() !== plain.sequence.tokens.join()) {
      throw new Error(`${name}: speculative output differs from greedy decoding`);
    }
    tokens += result.sequence.tokens.length;
    passes += result.acceptance.passes;
    accepted += result.acceptance.accepted;
    proposed += result.acceptance.proposed;
    draftMs += result.acceptance.draftMs;
    verifyMs += result.acceptance.verifyMs;
  }
  const row: Row = {
    drafter: name,
    budget,
    temperature,
    tokens,
    passes,
    acceptedPerPass: accepted / passes,
    proposedPerPass: proposed / passes,
    tokensPerPass: (tokens - prompts.length) / passes,
    draftMsPerPass: draftMs / passes,
    verifyMsPerPass: verifyMs / passes,
    plainMsPerToken: plainMs / tokens,
    speculativeMsPerToken: speculativeMs / tokens,
    speedup: plainMs / speculativeMs,
  };
  rows.push(row);
  writeResults(false);
  console.log(
    `${name.padEnd(22)} budget ${String(budget ?? '-').padStart(3)} T=${temperature}: ${row.acceptedPerPass.toFixed(2)} accepted / pass ` +
      `(${row.proposedPerPass.toFixed(1)} proposed), ${row.tokensPerPass.toFixed(2)} tokens / pass, draft ` +
      `${row.draftMsPerPass.toFixed(2)} ms + verify ${row.verifyMsPerPass.toFixed(2)} ms per pass; ` +
      `${row.speculativeMsPerToken.toFixed(2)} ms/token vs plain ${row.plainMsPerToken.toFixed(2)}: ×${row.speedup.toFixed(2)}`,
  );
}

// Warm up (JIT, and on WebGPU the pipelines) before anything is timed.
await runStrategy(generate(engine, { prompt: prompts[0]!, maxTokens: 20 }));
const baselines = !values['no-baselines'];
if (baselines) {
  await measure('prompt lookup', 24, promptLookupDrafter());
  await measure('prompt lookup', 24, promptLookupDrafter(), 0.8);
}
// Wider trees for larger budgets: a budget of 16·w nodes expands w nodes per depth (at least 4).
const shapes = (budget: number): ModelDrafterOptions => ({
  maxTokens: budget,
  maxDepth: 8,
  width: Math.max(4, Math.floor(budget / 16)),
  minProbability,
});
for (const layers of list(values.layers)) {
  const model = LlamaModel.create(backend, selfDraftCheckpoint(checkpoint, layers));
  const draftEngine = DecodingEngine.create(model, { numPages: 2048 });
  for (const budget of budgets) {
    const name = `self-draft ${layers}/${checkpoint.config.numLayers} layers`;
    await measure(name, budget, new ModelDrafter(draftEngine, shapes(budget)));
    if (layers >= 3 && budget <= 32) {
      await measure(name, budget, new ModelDrafter(draftEngine, shapes(budget)), 0.8);
    }
  }
  draftEngine.dispose();
  model.dispose();
}
// The target drafting for itself: every draft on its greedy path is accepted (an upper bound on acceptance).
if (baselines) {
  const selfEngine = DecodingEngine.create(target, { numPages: 512 });
  await measure(
    'target as its own draft',
    8,
    new ModelDrafter(selfEngine, { maxTokens: 8, maxDepth: 8, width: 1, branching: 1, minProbability: 0 }),
  );
  selfEngine.dispose();
}
writeResults(true);
engine.dispose();
target.dispose();
opened.close();
