import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCpuBackend } from '@deft/kernels-cpu';
import { LlamaModel, loadLlama2cCheckpoint, loadLlama2cTokenizer, type Tokenizer } from '@deft/model';

const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
const directory = path.resolve(repoRoot, '../shared/models/stories260K');

/** The stories260K files under `../shared/models/stories260K`. */
export const storiesFiles = {
  weights: path.join(directory, 'stories260K.bin'),
  tokenizer: path.join(directory, 'tok512.bin'),
  golden: path.join(directory, 'golden.json'),
};

/** True when the stories260K files are present. */
export const hasStories = Object.values(storiesFiles).every((file) => existsSync(file));

/** Why stories260K tests are skipped. */
export const storiesSkipReason = `stories260K model files not found under ${directory} (the shared data folder next to the repository)`;

/** The stories260K model on the CPU backend, its tokenizer and golden values. */
export async function loadStories(): Promise<{
  model: LlamaModel;
  tokenizer: Tokenizer;
  golden: { promptIdsWithBos: number[]; greedyNext30: number[] };
}> {
  const model = LlamaModel.create(createCpuBackend(), await loadLlama2cCheckpoint(storiesFiles.weights));
  const tokenizer = await loadLlama2cTokenizer(storiesFiles.tokenizer);
  const golden = JSON.parse(readFileSync(storiesFiles.golden, 'utf8')) as {
    promptIdsWithBos: number[];
    greedyNext30: number[];
  };
  return { model, tokenizer, golden };
}
