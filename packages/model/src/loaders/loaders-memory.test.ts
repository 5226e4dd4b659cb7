// The memory side of the loaders' fuzz test (loaders-fuzz.test.ts bounds each case's time): small files
// whose size and count fields are overwritten with hostile values must never make a loader allocate and
// fill memory sized from the header. Vitest runs each test file in its own process, so the peak resident
// memory of this one is the loaders' alone.
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

/** Peak resident memory a loader's whole run may add: the files are a few KiB, their models a few MiB. */
const RUN_LIMIT_BYTES = 256 * 2 ** 20;
/** Counts and sizes a hostile header announces, as 32-bit and 64-bit fields. */
const HOSTILE_COUNTS = [2 ** 16, 2 ** 20, 2 ** 24, 2 ** 28, 2 ** 30, 2 ** 31 - 1, 2 ** 32 - 1];

/** A copy of `base` with up to three aligned fields in its first `span` bytes set to hostile counts. */
function withHostileFields(base: Uint8Array, random: SeededRandom, span: number): Uint8Array {
  const bytes = base.slice();
  const view = new DataView(bytes.buffer);
  for (let edit = random.integer(1, 3); edit > 0; edit--) {
    const count = random.pick(HOSTILE_COUNTS);
    if (random.chance(0.5)) {
      const offset = random.integer(0, Math.floor((Math.min(span, bytes.length) - 4) / 4)) * 4;
      view.setUint32(offset, count >>> 0, true);
    } else {
      const offset = random.integer(0, Math.min(span, bytes.length) - 8);
      view.setBigUint64(offset, BigInt(count), true);
    }
  }
  return bytes;
}

const TOKENS = ['<unk>', '<s>', '</s>', '▁a', '▁b', 'ab', 'a', 'b', '▁', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];

/** Runs `cases` hostile copies through `parse` and returns how much the peak resident memory grew. */
async function peakGrowth(
  seed: number,
  bases: readonly Uint8Array[],
  cases: number,
  span: number,
  parse: (bytes: Uint8Array) => unknown,
): Promise<number> {
  const random = new SeededRandom(seed);
  const before = process.resourceUsage().maxRSS * 1024;
  for (let index = 0; index < cases; index++) {
    const bytes = withHostileFields(random.pick(bases), random, span);
    try {
      await parse(bytes);
    } catch (error) {
      if (!ModelFormatError.isInstance(error) && !UnsupportedError.isInstance(error)) {
        throw new Error(`case ${index}: expected a typed error, got ${(error as Error)?.stack ?? error}`);
      }
    }
  }
  return process.resourceUsage().maxRSS * 1024 - before;
}

describe('loaders under hostile size fields, in bounded memory', () => {
  it('llama2.c checkpoints: 1500 hostile headers', async () => {
    const bases = [
      writeLlama2cLegacy(syntheticCheckpoint(false)),
      writeLlama2cLegacy(syntheticCheckpoint(true)),
      writeLlama2cVersion1(syntheticCheckpoint(false)),
    ];
    const grown = await peakGrowth(1, bases, 1500, 64, (bytes) =>
      parseLlama2cCheckpoint(bytes, 'hostile.bin'),
    );
    expect(grown, `peak resident memory grew by ${grown} bytes`).toBeLessThan(RUN_LIMIT_BYTES);
  });

  it('GGUF models and vocabularies: 1000 hostile headers, metadata and tensor infos', async () => {
    const bases = [
      writeGgufCheckpoint(syntheticCheckpoint(false), { tokens: TOKENS }),
      writeGgufCheckpoint(syntheticCheckpoint(true), { tokens: TOKENS }),
    ];
    const grown = await peakGrowth(2, bases, 1000, 2048, (bytes) => parseGgufModel(bytes, 'hostile.gguf'));
    expect(grown, `peak resident memory grew by ${grown} bytes`).toBeLessThan(RUN_LIMIT_BYTES);
  });

  it('llama2.c tokenizers: 1500 hostile lengths and counts', async () => {
    const base = writeLlama2cTokenizer(TOKENS);
    const grown = await peakGrowth(3, [base], 1500, 64, (bytes) =>
      parseLlama2cTokenizer(bytes, undefined, 'hostile.bin'),
    );
    expect(grown, `peak resident memory grew by ${grown} bytes`).toBeLessThan(RUN_LIMIT_BYTES);
  });
});
