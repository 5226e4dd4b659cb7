import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestWebGpuDevice } from '@deft/kernels-webgpu';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { ARCHITECTURE_MODELS, generateJson, writeArchitectureModel } from './architecture-test-kit.js';
import { runGenerate } from './generate.js';

const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
const models = path.resolve(repoRoot, '../shared/models/stories260K');
const gguf = path.join(models, 'stories260K.gguf');

async function findAdapterSkipReason(): Promise<string | undefined> {
  try {
    (await requestWebGpuDevice()).dispose();
    return undefined;
  } catch (error) {
    return `no WebGPU adapter (${error instanceof Error ? error.message : String(error)})`;
  }
}

const adapterSkipReason = await findAdapterSkipReason();
const skipReason =
  adapterSkipReason ?? (existsSync(gguf) ? undefined : `stories260K model files not found under ${models}`);
if (skipReason !== undefined) console.warn(`deft generate --backend webgpu skipped: ${skipReason}`);

describe.skipIf(adapterSkipReason !== undefined)(
  'deft generate --backend webgpu on each architecture',
  () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-generate-webgpu-'));
    for (const entry of ARCHITECTURE_MODELS) {
      it(`${entry.name}: the greedy tokens and log-probabilities of the CPU backend`, async () => {
        const file = writeArchitectureModel(directory, entry);
        const run = async (backend: string) =>
          (await generateJson(['-m', file, '-p', 'once upon a time', '-n', '6', '--backend', backend]))[0]!;
        const [cpu, webgpu] = [await run('cpu'), await run('webgpu')];
        // Both backends keep the Q4_K blocks and dequantize them with ggml's arithmetic, so quantized
        // weights are held to the same tolerance as f32 ones at every step.
        expect(webgpu.tokens).toEqual(cpu.tokens);
        for (let step = 0; step < cpu.tokens.length; step++) {
          expect(Math.abs(webgpu.logProbabilities[step]! - cpu.logProbabilities[step]!)).toBeLessThan(1e-3);
        }
      }, 60_000);
    }
  },
);

describe.skipIf(skipReason !== undefined)('deft generate --backend webgpu', () => {
  it('streams the golden greedy text of stories260K', async () => {
    const golden = JSON.parse(readFileSync(path.join(models, 'golden.json'), 'utf8')) as {
      greedyTextStartsWith: string;
    };
    const io = recordingIo();
    const args = ['-m', gguf, '-p', 'Once upon a time', '-n', '30', '-q', '--backend', 'webgpu'];
    expect(await runGenerate(args, io)).toBe(0);
    expect(io.output().startsWith(golden.greedyTextStartsWith.slice(0, 100))).toBe(true);
  });
});
