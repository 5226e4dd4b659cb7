// Hostile and damaged files: seeded mutations and truncations of small valid files, fed to every loader.
// Each case must end in a valid load or a typed error (ModelFormatError, or UnsupportedError for a field
// that names an unsupported variant), quickly, and never in a crash, a hang or a huge allocation.
import { UnsupportedError } from '@deft/core';
import {
  SeededRandom,
  syntheticCheckpoint,
  writeGgufCheckpoint,
  writeLlama2cLegacy,
  writeLlama2cTokenizer,
  writeLlama2cVersion1,
} from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../errors/model-format-error.js';
import { parseLlama2cTokenizer } from '../tokenizer/llama2c-tokenizer.js';
import { parseGgufModel } from './gguf-model.js';
import { parseLlama2cCheckpoint } from './llama2c-checkpoint.js';

/** Values a hostile writer puts in a 32-bit field. */
const HOSTILE_INT32 = [0, -1, 1, 2, 3, 0x7fffffff, -0x80000000, 2 ** 30, 2 ** 24, 65536, 4096, 512];
/**
 * The slowest a single case may be. Sane cases take about a millisecond; the bound only catches a parser
 * that sizes work from a hostile count (n_layers = 2^30 used to run for half a minute), with room for a
 * busy machine.
 */
const CASE_LIMIT_MS = 2000;

/** A damaged copy of `base`: truncated, extended, bytes flipped, or an aligned 32/64-bit field overwritten. */
function mutate(base: Uint8Array, random: SeededRandom, hotBytes: number): Uint8Array {
  const kind = random.integer(0, 4);
  if (kind === 0) return base.slice(0, random.integer(0, base.length - 1));
  const bytes =
    kind === 1 ? Uint8Array.from([...base, ...Array(random.integer(1, 16)).fill(7)]) : base.slice();
  const view = new DataView(bytes.buffer);
  // Mostly inside the header, where sizes and counts live.
  const span = random.chance(0.8) ? Math.min(hotBytes, bytes.length) : bytes.length;
  const mutations = random.integer(1, 4);
  for (let index = 0; index < mutations; index++) {
    if (kind === 2 || kind === 1) {
      bytes[random.integer(0, span - 1)] = random.integer(0, 255);
    } else if (kind === 3) {
      const offset = random.integer(0, Math.max(0, Math.floor((span - 4) / 4))) * 4;
      if (offset + 4 <= bytes.length) view.setInt32(offset, random.pick(HOSTILE_INT32), true);
    } else {
      const offset = random.integer(0, Math.max(0, span - 8));
      if (offset + 8 <= bytes.length)
        view.setBigUint64(offset, BigInt(random.pick(HOSTILE_INT32) >>> 0) << 20n, true);
    }
  }
  return bytes;
}

function expectTypedOrValid(outcome: { error?: unknown }, label: string): void {
  if (!('error' in outcome)) return;
  const { error } = outcome;
  if (ModelFormatError.isInstance(error) || UnsupportedError.isInstance(error)) return;
  throw new Error(`${label}: expected a typed error, got ${String((error as Error)?.stack ?? error)}`);
}

async function attempt(parse: () => unknown): Promise<{ error?: unknown; milliseconds: number }> {
  const started = performance.now();
  try {
    await parse();
    return { milliseconds: performance.now() - started };
  } catch (error) {
    return { error, milliseconds: performance.now() - started };
  }
}

async function fuzz(
  label: string,
  bases: readonly Uint8Array[],
  cases: number,
  hotBytes: number,
  parse: (bytes: Uint8Array) => unknown,
): Promise<{ typed: number; valid: number }> {
  const random = new SeededRandom(label.length * 7919 + cases);
  let typed = 0;
  let valid = 0;
  for (let index = 0; index < cases; index++) {
    const bytes = mutate(random.pick(bases), random, hotBytes);
    const outcome = await attempt(() => parse(bytes));
    expectTypedOrValid(outcome, `${label} case ${index}`);
    expect(outcome.milliseconds, `${label} case ${index}`).toBeLessThan(CASE_LIMIT_MS);
    if ('error' in outcome) typed++;
    else valid++;
  }
  return { typed, valid };
}

const TOKENS = [
  '<unk>',
  '<s>',
  '</s>',
  '<0x41>',
  '▁a',
  '▁b',
  'ab',
  'b',
  'a',
  '▁',
  'c',
  'd',
  'e',
  'f',
  'g',
  'h',
];

describe('loaders under hostile and damaged files', () => {
  it('refuses a llama2.c header with n_layers = 2^30 at once, with a ModelFormatError', () => {
    const bytes = writeLlama2cLegacy(syntheticCheckpoint());
    new DataView(bytes.buffer).setInt32(8, 2 ** 30, true);
    const started = performance.now();
    expect(() => parseLlama2cCheckpoint(bytes, 'hostile.bin')).toThrow(ModelFormatError);
    expect(() => parseLlama2cCheckpoint(bytes, 'hostile.bin')).toThrow(/n_layers = 1073741824/);
    expect(performance.now() - started).toBeLessThan(CASE_LIMIT_MS);
    // Within the limits but far beyond the file: the size check comes before the tensor list.
    new DataView(bytes.buffer).setInt32(8, 4096, true);
    expect(() => parseLlama2cCheckpoint(bytes, 'hostile.bin')).toThrow(/truncated/);
  });

  it('reports GGUF counts and vocabulary ids beyond the file as ModelFormatError', async () => {
    const checkpoint = syntheticCheckpoint(false);
    const bytes = writeGgufCheckpoint(checkpoint, { tokens: TOKENS });
    new DataView(bytes.buffer).setBigUint64(8, 6_000_000n, true); // tensor count
    await expect(parseGgufModel(bytes, 'hostile.gguf')).rejects.toThrow(/announces 6000000 tensors/);
    const eos = writeGgufCheckpoint(checkpoint, {
      tokens: TOKENS,
      metadata: { 'tokenizer.ggml.eos_token_id': { type: 'u32', value: 999 } },
    });
    await expect(parseGgufModel(eos, 'hostile.gguf')).rejects.toSatisfy(ModelFormatError.isInstance);
    const layers = writeGgufCheckpoint(checkpoint, {
      metadata: { 'llama.block_count': { type: 'u32', value: 2 ** 30 } },
    });
    await expect(parseGgufModel(layers, 'hostile.gguf')).rejects.toThrow(/block_count = 1073741824/);
  });

  it('llama2.c checkpoints: 3000 mutations and truncations', async () => {
    const bases = [
      writeLlama2cLegacy(syntheticCheckpoint(false)),
      writeLlama2cLegacy(syntheticCheckpoint(true)),
      writeLlama2cVersion1(syntheticCheckpoint(false)),
    ];
    const { typed } = await fuzz('llama2c', bases, 3000, 64, (bytes) =>
      parseLlama2cCheckpoint(bytes, 'fuzz.bin'),
    );
    expect(typed).toBeGreaterThan(1000);
  });

  it('GGUF models and their vocabularies: 1500 mutations and truncations', async () => {
    const bases = [
      writeGgufCheckpoint(syntheticCheckpoint(false), { tokens: TOKENS }),
      writeGgufCheckpoint(syntheticCheckpoint(true), { tokens: TOKENS }),
    ];
    // Metadata and tensor infos fill the first ~2 KiB.
    const { typed } = await fuzz('gguf', bases, 1500, 2048, (bytes) => parseGgufModel(bytes, 'fuzz.gguf'));
    expect(typed).toBeGreaterThan(500);
  });

  it('llama2.c tokenizers: 3000 mutations and truncations, with and without a vocabulary size', async () => {
    const base = writeLlama2cTokenizer(TOKENS);
    expect(parseLlama2cTokenizer(base, TOKENS.length).vocabSize).toBe(TOKENS.length);
    await fuzz('llama2c tokenizer', [base], 1500, 64, (bytes) =>
      parseLlama2cTokenizer(bytes, undefined, 'fuzz.bin'),
    );
    await fuzz('llama2c tokenizer sized', [base], 1500, 64, (bytes) =>
      parseLlama2cTokenizer(bytes, TOKENS.length, 'fuzz.bin'),
    );
  });
});
