import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hasStories260K, type Stories260KGolden, stories260K, stories260KSkipReason } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { ARCHITECTURE_MODELS, generateJson, writeArchitectureModel } from './architecture-test-kit.js';
import { runGenerate } from './generate.js';

/** Why the CUDA backend cannot run here (no addon, no device or driver), or `undefined` when it can. */
async function findCudaSkipReason(): Promise<string | undefined> {
  try {
    const { createCudaBackend } = await import('@deft/kernels-cuda');
    createCudaBackend().dispose();
    return undefined;
  } catch (error) {
    return `no usable CUDA device (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`;
  }
}

const cudaSkipReason = await findCudaSkipReason();
const skipReason = cudaSkipReason ?? (hasStories260K ? undefined : stories260KSkipReason);
if (skipReason !== undefined) console.warn(`deft generate --backend cuda skipped: ${skipReason}`);

/** Log-probabilities of f32 weights: CUDA runs f32 matrices in f32, so it stays this close to the CPU. */
const LOG_PROB_TOLERANCE = 1e-3;

// The Q4_K file is left out: the CUDA backend holds no quantized weights, so its blocks become f16 on upload
// and run on tensor cores with fp16 activations, which is not held to the CPU's greedy tokens.
const F32_MODELS = ARCHITECTURE_MODELS.filter((model) => model.matrixType === 0);

describe.skipIf(cudaSkipReason !== undefined)('deft generate --backend cuda on each architecture', () => {
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-generate-cuda-'));
  for (const entry of F32_MODELS) {
    it(`${entry.name}: the greedy tokens and log-probabilities of the CPU backend`, async () => {
      const file = writeArchitectureModel(directory, entry);
      const run = async (backend: string) =>
        (await generateJson(['-m', file, '-p', 'once upon a time', '-n', '6', '--backend', backend]))[0]!;
      const [cpu, cuda] = [await run('cpu'), await run('cuda')];
      expect(cuda.tokens).toEqual(cpu.tokens);
      for (let step = 0; step < cpu.tokens.length; step++) {
        expect(Math.abs(cuda.logProbabilities[step]! - cpu.logProbabilities[step]!)).toBeLessThan(
          LOG_PROB_TOLERANCE,
        );
      }
    }, 60_000);
  }
});

describe.skipIf(skipReason !== undefined)('deft generate --backend cuda on stories260K', () => {
  const prompt = 'Once upon a time';

  it('streams the golden greedy text', async () => {
    const golden = JSON.parse(readFileSync(stories260K.golden, 'utf8')) as Stories260KGolden;
    const io = recordingIo();
    const args = ['-m', stories260K.gguf, '-p', golden.prompt, '-n', '30', '-q', '--backend', 'cuda'];
    expect(await runGenerate(args, io)).toBe(0);
    expect(io.output().startsWith(golden.greedyTextStartsWith.slice(0, 100))).toBe(true);
  });

  it('finds the beams of the CPU backend', async () => {
    const beams = (backend: string) =>
      generateJson([
        '-m',
        stories260K.gguf,
        '-p',
        prompt,
        '-s',
        'beam',
        '--width',
        '4',
        '-n',
        '20',
        '--backend',
        backend,
      ]);
    const [cpu, cuda] = [await beams('cpu'), await beams('cuda')];
    expect(cuda.map((beam) => beam.tokens)).toEqual(cpu.map((beam) => beam.tokens));
    cpu.forEach((beam, index) => {
      expect(Math.abs(cuda[index]!.score - beam.score)).toBeLessThan(LOG_PROB_TOLERANCE);
    });
  });

  it('decodes speculatively to the greedy tokens', async () => {
    const run = async (strategy: string) =>
      (
        await generateJson([
          '-m',
          stories260K.gguf,
          '-p',
          prompt,
          '-s',
          strategy,
          '-n',
          '40',
          '--backend',
          'cuda',
        ])
      )[0]!;
    const [greedy, speculative] = [await run('greedy'), await run('speculative')];
    expect(speculative.tokens).toEqual(greedy.tokens);
  });
});
