import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NotFoundError, UnsupportedError } from '@deft/core';
import {
  hasStories260K,
  stories260K,
  stories260KSkipReason,
  syntheticCheckpoint,
  writeLlama2cLegacy,
  writeLlama2cVersion1,
} from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../errors/model-format-error.js';
import { validateLlamaWeights } from '../weights/llama-weights.js';
import { loadLlama2cCheckpoint, parseLlama2cCheckpoint } from './llama2c-checkpoint.js';

describe('llama2.c checkpoints', () => {
  it('round-trips the legacy layout with shared and unshared heads', () => {
    for (const tied of [true, false]) {
      const checkpoint = syntheticCheckpoint(tied);
      const parsed = parseLlama2cCheckpoint(writeLlama2cLegacy(checkpoint), 'synthetic.bin');
      expect(parsed.config).toEqual(checkpoint.config);
      expect(parsed.weights).toEqual(checkpoint.weights);
      validateLlamaWeights(parsed.config, parsed.weights);
    }
  });

  it('round-trips the version-1 export', () => {
    for (const tied of [true, false]) {
      const checkpoint = syntheticCheckpoint(tied, 3);
      const parsed = parseLlama2cCheckpoint(writeLlama2cVersion1(checkpoint), 'synthetic-v1.bin');
      expect(parsed.config).toEqual(checkpoint.config);
      expect(parsed.weights).toEqual(checkpoint.weights);
    }
  });

  it('throws typed errors for missing, truncated, padded, quantized and foreign files', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-llama2c-'));
    await expect(loadLlama2cCheckpoint(path.join(directory, 'missing.bin'))).rejects.toSatisfy(
      NotFoundError.isInstance,
    );
    const bytes = writeLlama2cLegacy(syntheticCheckpoint());
    const truncatedFile = path.join(directory, 'truncated.bin');
    writeFileSync(truncatedFile, bytes.subarray(0, bytes.length - 10));
    await expect(loadLlama2cCheckpoint(truncatedFile)).rejects.toThrow(/is truncated/);
    expect(() => parseLlama2cCheckpoint(bytes.subarray(0, 12))).toThrow(ModelFormatError);
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes);
    expect(() => parseLlama2cCheckpoint(padded)).toThrow(/trailing bytes/);
    const quantized = writeLlama2cVersion1(syntheticCheckpoint());
    new DataView(quantized.buffer).setInt32(4, 2, true);
    expect(() => parseLlama2cCheckpoint(quantized)).toThrow(UnsupportedError);
    expect(() =>
      parseLlama2cCheckpoint(new TextEncoder().encode('GGUF\u0003\u0000\u0000\u0000 and more bytes here')),
    ).toThrow(/GGUF file/);
    const nonsense = new Uint8Array(64).fill(0xff);
    expect(() => parseLlama2cCheckpoint(nonsense)).toThrow(ModelFormatError);
  });

  describe.skipIf(!hasStories260K)('stories260K', () => {
    if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);
    it('reads the header', async () => {
      const { config } = await loadLlama2cCheckpoint(stories260K.weights);
      expect(config).toMatchObject({
        dim: 64,
        hiddenDim: 172,
        numLayers: 5,
        numHeads: 8,
        numKvHeads: 4,
        headDim: 8,
        vocabSize: 512,
        contextLength: 512,
        tiedEmbeddings: true,
      });
      expect(readFileSync(stories260K.weights).length).toBe(1056540);
    });
  });
});
