import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestWebGpuDevice } from '@deft/kernels-webgpu';
import type { LlamaConfig } from '@deft/model';
import { randomCheckpoint, superBlockConfig, writeGgufCheckpoint } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
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

/** A small SentencePiece vocabulary (unknown, BOS, EOS, the 256 bytes, letters). */
function pieces(): string[] {
  const list = ['<unk>', '<s>', '</s>'];
  for (let byte = 0; byte < 256; byte++) list.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (const letter of 'abcdefghijklmnopqrstuvwxyz') list.push(letter, `\u2581${letter}`);
  return list;
}

const base = superBlockConfig({ vocabSize: pieces().length, contextLength: 128 });

/** One GGUF per architecture setting the WebGPU model ops must honour, and a quantized file. */
const MODELS: { name: string; architecture: string; config: LlamaConfig; matrixType: number }[] = [
  {
    name: 'llama with rope_freqs',
    architecture: 'llama',
    config: {
      ...base,
      ropeTheta: 500000,
      ropeFrequencyFactors: new Float32Array(32).map((_, pair) => 1 + pair),
    },
    matrixType: 0,
  },
  {
    name: 'qwen2 with QKV bias',
    architecture: 'qwen2',
    config: { ...base, ropeStyle: 'half', attentionBias: true },
    matrixType: 0,
  },
  {
    name: 'qwen3 with per-head Q/K norms',
    architecture: 'qwen3',
    config: { ...base, ropeStyle: 'half', queryKeyNorm: true, headDim: 32, tiedEmbeddings: true },
    matrixType: 0,
  },
  {
    name: 'llama in Q4_K (blocks dequantized in the shader)',
    architecture: 'llama',
    config: base,
    matrixType: 12,
  },
];

describe.skipIf(adapterSkipReason !== undefined)(
  'deft generate --backend webgpu on each architecture',
  () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-generate-webgpu-'));
    for (const entry of MODELS) {
      it(`${entry.name}: the greedy tokens and log-probabilities of the CPU backend`, async () => {
        const file = path.join(directory, `${entry.architecture}-${entry.matrixType}.gguf`);
        writeFileSync(
          file,
          writeGgufCheckpoint(randomCheckpoint(entry.config, 9), {
            architecture: entry.architecture,
            matrixType: entry.matrixType,
            tokens: pieces(),
          }),
        );
        const run = async (backend: string) => {
          const io = recordingIo();
          expect(
            await runGenerate(
              ['-m', file, '-p', 'once upon a time', '-n', '6', '--json', '--backend', backend],
              io,
            ),
          ).toBe(0);
          return JSON.parse(io.output()).sequences[0] as { tokens: number[]; logProbabilities: number[] };
        };
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
