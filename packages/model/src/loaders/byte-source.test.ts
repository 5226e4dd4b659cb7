import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@deft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLlama2cTokenizer } from '../tokenizer/llama2c-tokenizer.js';
import { openFileSource } from './byte-source.js';
import { loadGgufModel } from './gguf-model.js';
import { loadLlama2cCheckpoint } from './llama2c-checkpoint.js';

const directory = mkdtempSync(path.join(tmpdir(), 'deft-byte-source-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

async function failure(action: () => Promise<unknown>): Promise<Error> {
  try {
    await action();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

describe('file errors name the file and its role', () => {
  it('says a directory is a directory, for every loader', async () => {
    for (const load of [
      () => loadGgufModel(directory),
      () => loadLlama2cCheckpoint(directory),
      () => openFileSource(directory),
    ]) {
      const error = await failure(load);
      expect(InvalidArgumentError.isInstance(error)).toBe(true);
      expect(error.message).toBe(`${directory} is a directory, expected a model file`);
    }
    const tokenizer = await failure(() => loadLlama2cTokenizer(directory));
    expect(InvalidArgumentError.isInstance(tokenizer)).toBe(true);
    expect(tokenizer.message).toBe(`${directory} is a directory, expected a tokenizer file`);
  });

  it('calls a missing tokenizer a tokenizer file, not a model file', async () => {
    const missing = path.join(directory, 'tok512.bin');
    const error = await failure(() => loadLlama2cTokenizer(missing));
    expect(NotFoundError.isInstance(error)).toBe(true);
    expect(error.message).toMatch(new RegExp(`^tokenizer file ${missing} does not exist`));
    const model = await failure(() => loadLlama2cCheckpoint(path.join(directory, 'model.bin')));
    expect(model.message).toMatch(/^model file .* does not exist/);
  });
});
