import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LlamaConfig } from '@deft/model';
import { randomCheckpoint, superBlockConfig, writeGgufCheckpoint } from '@deft/testing';
import { expect } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { runGenerate } from './generate.js';

// Helpers of the GPU backends' `deft generate` tests (this app is private: nothing here ships).

/** A small SentencePiece vocabulary (unknown, BOS, EOS, the 256 bytes, letters). */
export function pieces(): string[] {
  const list = ['<unk>', '<s>', '</s>'];
  for (let byte = 0; byte < 256; byte++) list.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (const letter of 'abcdefghijklmnopqrstuvwxyz') list.push(letter, `\u2581${letter}`);
  return list;
}

/** A GGUF the tests write: an architecture, its config and the GGML type of its matrices. */
export interface ArchitectureModel {
  readonly name: string;
  readonly architecture: string;
  readonly config: LlamaConfig;
  /** GGML type id of the matrices: 0 is F32, 12 is Q4_K. */
  readonly matrixType: number;
}

const base = superBlockConfig({ vocabSize: pieces().length, contextLength: 128 });

/** One GGUF per architecture setting a backend's model ops must honour, and a quantized file. */
export const ARCHITECTURE_MODELS: readonly ArchitectureModel[] = [
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

/** Writes the model's GGUF (seeded random weights, {@link pieces} as vocabulary) into `directory`; returns its path. */
export function writeArchitectureModel(directory: string, model: ArchitectureModel): string {
  const file = path.join(directory, `${model.architecture}-${model.matrixType}.gguf`);
  writeFileSync(
    file,
    writeGgufCheckpoint(randomCheckpoint(model.config, 9), {
      architecture: model.architecture,
      matrixType: model.matrixType,
      tokens: pieces(),
    }),
  );
  return file;
}

/** A sequence of `deft generate --json`, as the tests read it. */
export interface GeneratedJsonSequence {
  readonly text: string;
  readonly tokens: number[];
  readonly logProbabilities: number[];
  /** Sum of the log-probabilities (natural log). */
  readonly score: number;
}

/** Runs `deft generate ARGS --json`, expects exit code 0 and returns the sequences it printed. */
export async function generateJson(args: readonly string[]): Promise<GeneratedJsonSequence[]> {
  const io = recordingIo();
  expect(await runGenerate([...args, '--json'], io)).toBe(0);
  return (JSON.parse(io.output()) as { sequences: GeneratedJsonSequence[] }).sequences;
}
