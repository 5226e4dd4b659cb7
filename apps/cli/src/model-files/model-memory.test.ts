import { totalmem } from 'node:os';
import { hasStories260K, stories260K } from '@deft/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { runGenerate } from '../commands/generate.js';
import { UsageError } from '../errors/usage-error.js';
import { modelMemoryBudget } from './model-memory.js';

describe('the host-memory budget of a loaded model', () => {
  const saved = process.env.DEFT_HOST_MEMORY_BUDGET;
  afterEach(() => {
    if (saved === undefined) delete process.env.DEFT_HOST_MEMORY_BUDGET;
    else process.env.DEFT_HOST_MEMORY_BUDGET = saved;
  });

  it('is DEFT_HOST_MEMORY_BUDGET when set, else the machine memory', () => {
    expect(modelMemoryBudget({})).toBe(totalmem());
    expect(modelMemoryBudget({ DEFT_HOST_MEMORY_BUDGET: '4096' })).toBe(4096);
    expect(() => modelMemoryBudget({ DEFT_HOST_MEMORY_BUDGET: 'lots' })).toThrow(UsageError);
  });

  it.skipIf(!hasStories260K)('refuses a model above it before loading it (GGUF and llama2.c)', async () => {
    process.env.DEFT_HOST_MEMORY_BUDGET = '1000';
    for (const args of [
      ['-m', stories260K.gguf, '-p', 'Once', '-n', '2', '--backend', 'cpu'],
      ['-m', stories260K.weights, '-t', stories260K.tokenizer, '-p', 'Once', '-n', '2', '--backend', 'cpu'],
    ]) {
      const io = recordingIo();
      expect(await runGenerate(args, io)).toBe(1);
      expect(io.errors()).toMatch(/above the budget of 1000 bytes/);
      expect(io.output()).toBe('');
    }
  });
});
