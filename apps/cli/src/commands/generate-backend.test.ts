import { readFileSync } from 'node:fs';
import { hasStories260K, type Stories260KGolden, stories260K, stories260KSkipReason } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { runGenerate } from './generate.js';

/** True when the CUDA backend opens here (its addon loads and a device answers). */
async function cudaUsable(): Promise<boolean> {
  try {
    const { createCudaBackend } = await import('@deft/kernels-cuda');
    createCudaBackend().dispose();
    return true;
  } catch {
    return false;
  }
}

const hasCuda = await cudaUsable();
if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);
if (hasCuda) console.warn('skipped: a CUDA device is usable here, so --backend cuda cannot be refused');

describe('deft generate --backend', () => {
  it('lists auto beside cpu, webgpu and cuda in the help', async () => {
    const io = recordingIo();
    expect(await runGenerate(['--help'], io)).toBe(0);
    expect(io.output()).toMatch(/--backend B +cpu, webgpu, cuda, auto \(default cpu\)/);
  });

  it.skipIf(!hasStories260K)(
    'auto generates the golden greedy text on whichever backend it picks',
    async () => {
      const golden = JSON.parse(readFileSync(stories260K.golden, 'utf8')) as Stories260KGolden;
      const io = recordingIo();
      const args = ['-m', stories260K.gguf, '-p', golden.prompt, '-n', '30', '-q', '--backend', 'auto'];
      expect(await runGenerate(args, io)).toBe(0);
      expect(io.output().startsWith(golden.greedyTextStartsWith.slice(0, 100))).toBe(true);
    },
  );
});

describe.skipIf(hasCuda || !hasStories260K)('deft generate --backend cuda without a CUDA device', () => {
  it('fails with one line that names cuda and says why', async () => {
    const io = recordingIo();
    const args = ['-m', stories260K.gguf, '-p', 'Once', '-n', '2', '--backend', 'cuda'];
    expect(await runGenerate(args, io)).not.toBe(0);
    expect(io.output()).toBe('');
    const lines = io
      .errors()
      .split('\n')
      .filter((line) => line !== '');
    expect(lines).toHaveLength(1);
    // e.g. "deft generate: the cuda backend is unavailable: [cuda] no CUDA device or driver is available: …"
    expect(lines[0]).toMatch(/^deft generate: the cuda backend is unavailable: \S.*/);
  });
});
