import { readFileSync } from 'node:fs';
import { createCpuBackend } from '@deft/kernels-cpu';
import { PagePool } from '@deft/kv-cache';
import { LlamaModel, loadLlama2cCheckpoint } from '@deft/model';
import { hasStories260K, type Stories260KGolden, stories260K, stories260KSkipReason } from '@deft/testing';
import { TokenTree } from '@deft/tree';
import { describe, expect, it } from 'vitest';
import { TreeModelRunner } from './tree-model-runner.js';

function argmax(row: Float32Array): number {
  let best = 0;
  for (let index = 1; index < row.length; index++) if (row[index]! > row[best]!) best = index;
  return best;
}

describe.skipIf(!hasStories260K)('stories260K golden', () => {
  if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);

  it('matches the first-step top-5 logits and the 30-token greedy continuation', async () => {
    const golden = JSON.parse(readFileSync(stories260K.golden, 'utf8')) as Stories260KGolden;
    const backend = createCpuBackend();
    const model = LlamaModel.create(backend, await loadLlama2cCheckpoint(stories260K.weights));
    const pool = new PagePool({ numPages: 16, pageSize: 16 });
    const storage = model.createKVStorage({ numPages: pool.numPages, pageSize: pool.pageSize });
    const tree = TokenTree.create(golden.promptIdsWithBos);
    const runner = new TreeModelRunner({ model, tree, pool, storage });

    let step = await runner.evaluate({ output: 'logits' });
    const logits = step.row(tree.root)!;
    const top = Array.from(logits.keys())
      .sort((a, b) => logits[b]! - logits[a]!)
      .slice(0, 5);
    expect(top).toEqual(golden.firstStepTop5.map(([id]) => id));
    for (const [id, value] of golden.firstStepTop5) expect(Math.abs(logits[id]! - value)).toBeLessThan(1e-3);

    const generated: number[] = [];
    for (let index = 0; index < golden.greedyNext30.length; index++) {
      const token = argmax(step.row(tree.root)!);
      generated.push(token);
      tree.append(tree.root, token);
      if (index < golden.greedyNext30.length - 1) step = await runner.evaluate({ output: 'logits' });
    }
    expect(generated).toEqual(golden.greedyNext30);
    runner.dispose();
    expect(pool.usedCount).toBe(0);
    model.dispose();
    backend.dispose();
  });
});
