import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (four levels above this file). */
export const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');

/**
 * The shared data folder: `DEFT_SHARED_DIRECTORY` when set (a bundled test run elsewhere), else
 * `../shared` relative to the repository root.
 */
export const sharedDirectory = process.env.DEFT_SHARED_DIRECTORY || path.resolve(repoRoot, '../shared');

/** `models/stories260K` in the shared data folder. */
export const stories260KDirectory = path.resolve(sharedDirectory, 'models/stories260K');

/** The stories260K files, or a reason why tests that need them are skipped. */
export const stories260K = {
  weights: path.join(stories260KDirectory, 'stories260K.bin'),
  gguf: path.join(stories260KDirectory, 'stories260K.gguf'),
  tokenizer: path.join(stories260KDirectory, 'tok512.bin'),
  golden: path.join(stories260KDirectory, 'golden.json'),
};

/** True when every stories260K file is present. */
export const hasStories260K = Object.values(stories260K).every((file) => existsSync(file));

/** Why the stories260K tests are skipped, printed once per test file. */
export const stories260KSkipReason = `stories260K model files not found under ${stories260KDirectory} (the shared data folder next to the repository)`;

/** The golden values recorded for stories260K. */
export interface Stories260KGolden {
  readonly prompt: string;
  readonly promptIdsWithBos: number[];
  readonly firstStepTop5: [number, number, string][];
  readonly greedyNext30: number[];
  readonly greedyTextStartsWith: string;
}
