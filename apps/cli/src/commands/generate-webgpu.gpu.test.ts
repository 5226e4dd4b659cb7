import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestWebGpuDevice } from '@deft/kernels-webgpu';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { runGenerate } from './generate.js';

const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
const models = path.resolve(repoRoot, '../shared/models/stories260K');
const gguf = path.join(models, 'stories260K.gguf');

async function findSkipReason(): Promise<string | undefined> {
  if (!existsSync(gguf)) return `stories260K model files not found under ${models}`;
  try {
    (await requestWebGpuDevice()).dispose();
    return undefined;
  } catch (error) {
    return `no WebGPU adapter (${error instanceof Error ? error.message : String(error)})`;
  }
}

const skipReason = await findSkipReason();
if (skipReason !== undefined) console.warn(`deft generate --backend webgpu skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('deft generate --backend webgpu', () => {
  it('streams the golden greedy text of stories260K', async () => {
    const golden = JSON.parse(readFileSync(path.join(models, 'golden.json'), 'utf8')) as {
      greedyTextStartsWith: string;
    };
    const io = recordingIo();
    const args = ['-m', gguf, '-p', 'Once upon a time', '-n', '30', '-q', '--backend', 'webgpu'];
    expect(await runGenerate(args, io)).toBe(0);
    expect(io.output().startsWith(golden.greedyTextStartsWith.slice(0, 100))).toBe(true);
  });
});
