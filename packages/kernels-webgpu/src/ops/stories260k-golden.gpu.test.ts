import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType } from '@deft/core';
import { TreeModelRunner } from '@deft/decoder';
import { PagePool } from '@deft/kv-cache';
import { LlamaModel, loadLlama2cCheckpoint } from '@deft/model';
import { TokenTree } from '@deft/tree';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { createWebGpuBackend } from '../backend/webgpu-backend.js';

const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
const modelDirectory = path.resolve(repoRoot, '../shared/models/stories260K');
const files = {
  weights: path.join(modelDirectory, 'stories260K.bin'),
  golden: path.join(modelDirectory, 'golden.json'),
};
const hasModel = Object.values(files).every((file) => existsSync(file));

const testDevice = await openTestDevice();
const skipReason =
  testDevice.handle === undefined
    ? testDevice.skipReason
    : hasModel
      ? undefined
      : `stories260K model files not found under ${modelDirectory} (the shared data folder next to the repository)`;
if (skipReason !== undefined) console.warn(`stories260K on WebGPU skipped: ${skipReason}`);

interface Golden {
  readonly promptIdsWithBos: number[];
  readonly firstStepTop5: [number, number, string][];
  readonly greedyNext30: number[];
}

async function greedyRun(weightDtype: DType) {
  const golden = JSON.parse(readFileSync(files.golden, 'utf8')) as Golden;
  const backend = createWebGpuBackend({ device: testDevice.handle!.device });
  const model = LlamaModel.create(backend, await loadLlama2cCheckpoint(files.weights), { weightDtype });
  const pool = new PagePool({ numPages: 16, pageSize: 16 });
  const storage = model.createKVStorage({ numPages: pool.numPages, pageSize: pool.pageSize });
  const tree = TokenTree.create(golden.promptIdsWithBos);
  const runner = new TreeModelRunner({ model, tree, pool, storage });

  let step = await runner.evaluate({ output: 'logits' });
  const firstLogits = step.row(tree.root)!.slice();
  const generated: number[] = [];
  for (let index = 0; index < golden.greedyNext30.length; index++) {
    const row = step.row(tree.root)!;
    let token = 0;
    for (let column = 1; column < row.length; column++) if (row[column]! > row[token]!) token = column;
    generated.push(token);
    tree.append(tree.root, token);
    if (index < golden.greedyNext30.length - 1) step = await runner.evaluate({ output: 'logits' });
  }
  runner.dispose();
  expect(pool.usedCount).toBe(0);
  model.dispose();
  backend.dispose();
  const top = Array.from(firstLogits.keys())
    .sort((a, b) => firstLogits[b]! - firstLogits[a]!)
    .slice(0, 5);
  return { golden, firstLogits, top, generated };
}

describe.skipIf(skipReason !== undefined)('stories260K on the WebGPU model ops', () => {
  afterAll(() => testDevice.handle?.dispose());

  it('matches the first-step top-5 logits and the 30-token greedy continuation (f32 weights)', async () => {
    const { golden, firstLogits, top, generated } = await greedyRun('f32');
    expect(top).toEqual(golden.firstStepTop5.map(([id]) => id));
    for (const [id, value] of golden.firstStepTop5)
      expect(Math.abs(firstLogits[id]! - value)).toBeLessThan(1e-3);
    expect(generated).toEqual(golden.greedyNext30);
  });

  it('keeps the golden top-5 and greedy continuation with f16 weights', async () => {
    const { golden, firstLogits, top, generated } = await greedyRun('f16');
    expect(top).toEqual(golden.firstStepTop5.map(([id]) => id));
    for (const [id, value] of golden.firstStepTop5)
      expect(Math.abs(firstLogits[id]! - value)).toBeLessThan(2e-2);
    expect(generated).toEqual(golden.greedyNext30);
  });
});
