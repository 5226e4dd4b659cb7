import { createCpuBackend } from '@deft/kernels-cpu';
import { PagePool } from '@deft/kv-cache';
import { LlamaModel, loadGgufModel } from '@deft/model';
import { hasStories260K, stories260K, stories260KSkipReason } from '@deft/testing';
import { TokenTree } from '@deft/tree';
import { afterAll, describe, expect, it } from 'vitest';
import { TreeModelRunner } from './tree-model-runner.js';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

/** Loads llama.cpp's prebuilt CPU binary through node-llama-cpp, or says why it cannot. */
async function loadLlamaCpp(): Promise<{ llama: Llama } | { reason: string }> {
  if (!hasStories260K) return { reason: stories260KSkipReason };
  try {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    return {
      llama: await getLlama({ build: 'never', gpu: false, logLevel: LlamaLogLevel.error, maxThreads: 2 }),
    };
  } catch (error) {
    return { reason: `node-llama-cpp has no usable prebuilt CPU binary here: ${(error as Error).message}` };
  }
}

const loaded = await loadLlamaCpp();
const skipReason = 'reason' in loaded ? loaded.reason : undefined;
if (skipReason !== undefined) console.warn(`skipped: ${skipReason}`);

const GREEDY_TOKENS = 100;
const TEXTS = [
  'Once upon a time',
  'Lily and Ben went to the park. They saw a big dog!',
  'Héllo wörld 😀\n  two  spaces',
  'The end.',
];

describe.skipIf(skipReason !== undefined)('stories260K against llama.cpp', () => {
  const llama = 'llama' in loaded ? loaded.llama : undefined;
  afterAll(async () => {
    await llama?.dispose();
  });

  it(`tokenizes like llama.cpp and decodes the same ${GREEDY_TOKENS} greedy tokens`, async () => {
    const gguf = await loadGgufModel(stories260K.gguf);
    const tokenizer = gguf.tokenizer!;
    const reference = await llama!.loadModel({ modelPath: stories260K.gguf });
    const context = await reference.createContext({ contextSize: 128, batchSize: 64, threads: 1 });
    try {
      for (const text of TEXTS)
        expect(tokenizer.encode(text, { bos: false })).toEqual(Array.from(reference.tokenize(text)));
      const prompt = tokenizer.encode(TEXTS[0]!);
      const expected: number[] = [];
      const promptTokens = prompt as unknown as Parameters<typeof reference.detokenize>[0];
      for await (const token of context.getSequence().evaluate([...promptTokens], { temperature: 0 })) {
        expected.push(token as unknown as number);
        if (expected.length === GREEDY_TOKENS) break;
      }

      const backend = createCpuBackend();
      const model = LlamaModel.create(backend, gguf);
      const pool = new PagePool({ numPages: 16, pageSize: 16 });
      const tree = TokenTree.create(prompt);
      const runner = new TreeModelRunner({
        model,
        tree,
        pool,
        storage: model.createKVStorage({ numPages: 16 }),
      });
      const generated: number[] = [];
      let step = await runner.evaluate();
      while (generated.length < GREEDY_TOKENS) {
        const row = step.row(tree.root)!;
        let best = 0;
        for (let index = 1; index < row.length; index++) if (row[index]! > row[best]!) best = index;
        generated.push(best);
        tree.append(tree.root, best);
        if (generated.length < GREEDY_TOKENS) step = await runner.evaluate();
      }
      runner.dispose();
      backend.dispose();
      expect(generated).toEqual(expected);
    } finally {
      await context.dispose();
      await reference.dispose();
    }
  });
});
