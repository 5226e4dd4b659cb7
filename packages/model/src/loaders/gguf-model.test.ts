import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NotFoundError, UnsupportedError } from '@deft/core';
import {
  hasStories260K,
  stories260K,
  stories260KSkipReason,
  syntheticCheckpoint,
  writeGgufCheckpoint,
} from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../errors/model-format-error.js';
import { decodeHostWeight, type HostWeight } from '../weights/host-weight.js';
import { loadGgufModel, parseGgufModel } from './gguf-model.js';
import { loadLlama2cCheckpoint } from './llama2c-checkpoint.js';

function maxDifference(first: HostWeight, second: HostWeight): number {
  const a = decodeHostWeight(first);
  const b = decodeHostWeight(second);
  let maximum = 0;
  for (let index = 0; index < a.length; index++) maximum = Math.max(maximum, Math.abs(a[index]! - b[index]!));
  return maximum;
}

describe('GGUF models', () => {
  it('reads f32 tensors exactly, tied and untied', async () => {
    for (const tied of [true, false]) {
      const checkpoint = syntheticCheckpoint(tied);
      const model = await parseGgufModel(writeGgufCheckpoint(checkpoint), 'synthetic.gguf');
      expect(model.config).toEqual({ ...checkpoint.config, normEpsilon: Math.fround(1e-5) });
      expect(model.weights).toEqual(checkpoint.weights);
      expect(model.tokenizer).toBeUndefined();
    }
  });

  it('decodes f16 tensors to within binary16 rounding', async () => {
    const checkpoint = syntheticCheckpoint(false, 2);
    const model = await parseGgufModel(writeGgufCheckpoint(checkpoint, { matrixType: 1 }));
    expect(maxDifference(model.weights.layers[1]!.query, checkpoint.weights.layers[1]!.query)).toBeLessThan(
      2 ** -11,
    );
    expect(maxDifference(model.weights.output!, checkpoint.weights.output!)).toBeLessThan(2 ** -11);
    expect(
      maxDifference(model.weights.layers[0]!.query, checkpoint.weights.layers[0]!.query),
    ).toBeGreaterThan(0);
  });

  it('throws typed errors for missing, truncated, quantized and foreign files', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-gguf-'));
    await expect(loadGgufModel(path.join(directory, 'missing.gguf'))).rejects.toSatisfy(
      NotFoundError.isInstance,
    );
    const bytes = writeGgufCheckpoint(syntheticCheckpoint());
    const truncatedFile = path.join(directory, 'truncated.gguf');
    writeFileSync(truncatedFile, bytes.subarray(0, bytes.length - 100));
    await expect(loadGgufModel(truncatedFile)).rejects.toSatisfy(ModelFormatError.isInstance);
    await expect(parseGgufModel(bytes.subarray(0, 40))).rejects.toSatisfy(ModelFormatError.isInstance);
    await expect(parseGgufModel(new TextEncoder().encode('not a gguf file at all'))).rejects.toThrow(
      /not a readable GGUF/,
    );
    const quantized = writeGgufCheckpoint(syntheticCheckpoint(), { matrixType: 10 });
    await expect(parseGgufModel(quantized)).rejects.toThrow(
      /Q2_K; supported tensor types are F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K/,
    );
    await expect(parseGgufModel(quantized)).rejects.toSatisfy(UnsupportedError.isInstance);
    const gpt2 = writeGgufCheckpoint(syntheticCheckpoint(), { architecture: 'gpt2' });
    await expect(parseGgufModel(gpt2)).rejects.toThrow(/general.architecture = "gpt2"/);
    const noHeads = writeGgufCheckpoint(syntheticCheckpoint(), {
      metadata: { 'llama.attention.head_count': { type: 'string', value: 'two' } },
    });
    await expect(parseGgufModel(noHeads)).rejects.toThrow(/llama.attention.head_count/);
  });

  describe.skipIf(!hasStories260K)('stories260K', () => {
    if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);
    it('holds the same weights as the llama2.c checkpoint', async () => {
      const [gguf, checkpoint] = await Promise.all([
        loadGgufModel(stories260K.gguf),
        loadLlama2cCheckpoint(stories260K.weights),
      ]);
      expect({ ...gguf.config, normEpsilon: 1e-5 }).toEqual(checkpoint.config);
      const bytesOf = (weight: HostWeight | undefined) => {
        const array = decodeHostWeight(weight as HostWeight);
        return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
      };
      const same = (a: HostWeight | undefined, b: HostWeight | undefined) => bytesOf(a).equals(bytesOf(b));
      expect(same(gguf.weights.tokenEmbedding, checkpoint.weights.tokenEmbedding)).toBe(true);
      expect(same(gguf.weights.finalNorm, checkpoint.weights.finalNorm)).toBe(true);
      expect(gguf.weights.output).toBeUndefined();
      gguf.weights.layers.forEach((layer, index) => {
        for (const key of Object.keys(layer) as (keyof typeof layer)[])
          expect(same(layer[key], checkpoint.weights.layers[index]![key]), `${key} of layer ${index}`).toBe(
            true,
          );
      });
      expect(gguf.tokenizer?.vocabSize).toBe(512);
      const inMemory = await parseGgufModel(new Uint8Array(readFileSync(stories260K.gguf)));
      expect(same(inMemory.weights.tokenEmbedding, checkpoint.weights.tokenEmbedding)).toBe(true);
    });
  });
});
