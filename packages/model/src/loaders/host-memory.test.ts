import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CapacityError, InvalidArgumentError } from '@deft/core';
import { syntheticCheckpoint, writeGgufCheckpoint, writeLlama2cVersion1 } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { loadGgufModel, parseGgufModel } from './gguf-model.js';
import { loadLlama2cCheckpoint } from './llama2c-checkpoint.js';

describe('host-memory budget of the loaders', () => {
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-model-memory-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));
  const gguf = writeGgufCheckpoint(syntheticCheckpoint());

  it('refuses a GGUF model above the budget before any tensor is read', async () => {
    const progress: number[] = [];
    const refused = parseGgufModel(gguf, 'synthetic.gguf', {
      hostMemoryBudgetBytes: 100,
      onProgress: (step) => progress.push(step.tensors),
    });
    await expect(refused).rejects.toThrow(CapacityError);
    await expect(refused).rejects.toThrow(
      /synthetic\.gguf: its weights need \d+ bytes of host memory, above the budget of 100 bytes/,
    );
    expect(progress).toEqual([]);
    const file = path.join(directory, 'synthetic.gguf');
    writeFileSync(file, gguf);
    await expect(loadGgufModel(file, { hostMemoryBudgetBytes: 100 })).rejects.toThrow(CapacityError);
    // Within the budget it loads.
    const model = await loadGgufModel(file, { hostMemoryBudgetBytes: gguf.byteLength });
    expect(model.config.numLayers).toBeGreaterThan(0);
    await expect(parseGgufModel(gguf, 'x.gguf', { hostMemoryBudgetBytes: -1 })).rejects.toThrow(
      InvalidArgumentError,
    );
  });

  it('refuses a llama2.c file above the budget before reading it', async () => {
    const file = path.join(directory, 'synthetic.bin');
    const bytes = writeLlama2cVersion1(syntheticCheckpoint());
    writeFileSync(file, bytes);
    await expect(
      loadLlama2cCheckpoint(file, { hostMemoryBudgetBytes: bytes.byteLength - 1 }),
    ).rejects.toThrow(
      new RegExp(
        `need ${bytes.byteLength} bytes of host memory, above the budget of ${bytes.byteLength - 1} bytes`,
      ),
    );
    const checkpoint = await loadLlama2cCheckpoint(file, { hostMemoryBudgetBytes: bytes.byteLength });
    expect(checkpoint.config.dim).toBe(syntheticCheckpoint().config.dim);
  });
});
