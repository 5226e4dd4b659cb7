import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCpuBackend } from '@deft/kernels-cpu';
import {
  greedyDecode,
  type RealVocabularyName,
  randomCheckpoint,
  realVocabulary,
  TOKENIZER_CORPUS,
  writeGgufCheckpoint,
} from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../config/llama-config.js';
import { LlamaModel } from '../forward/llama-model.js';
import { loadGgufModel } from './gguf-model.js';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

/** Loads llama.cpp's prebuilt CPU binary through node-llama-cpp, or says why it cannot. */
async function loadLlamaCpp(): Promise<{ llama: Llama } | { reason: string }> {
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

/** A small model of an architecture with a real vocabulary, as its GGUF file would hold it. */
interface CrossCheckCase {
  readonly name: string;
  readonly architecture: 'llama' | 'qwen2' | 'qwen3';
  readonly vocabulary: RealVocabularyName;
  readonly config: Omit<LlamaConfig, 'vocabSize'>;
  /** GGML type of the matrices (0 F32, 1 F16, or a block quantization). */
  readonly matrixType: number;
  /** Largest difference allowed between the two log-probabilities of a top-5 token. */
  readonly tolerance: number;
  /** Whether to compare tokenization on the corpus (once per vocabulary is enough). */
  readonly tokenization: boolean;
}

const small = {
  dim: 64,
  hiddenDim: 128,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  contextLength: 256,
  normEpsilon: 1e-5,
};

const CASES: CrossCheckCase[] = [
  {
    name: 'Llama 3 (llama-bpe, rope_freqs, theta 500000), F32',
    architecture: 'llama',
    vocabulary: 'llama3',
    config: {
      ...small,
      ropeTheta: 500000,
      ropeStyle: 'interleaved',
      tiedEmbeddings: false,
      ropeFrequencyFactors: Float32Array.of(3, 1, 1, 2, 4, 8, 16, 32),
    },
    matrixType: 0,
    tolerance: 2e-3,
    tokenization: true,
  },
  {
    name: 'Qwen 2 (qwen2 pre-tokenizer, QKV bias), F16',
    architecture: 'qwen2',
    vocabulary: 'qwen3',
    config: {
      ...small,
      normEpsilon: 1e-6,
      ropeTheta: 1000000,
      ropeStyle: 'half',
      tiedEmbeddings: false,
      attentionBias: true,
    },
    matrixType: 1,
    tolerance: 3e-2,
    tokenization: true,
  },
  {
    name: 'Qwen 3 (per-head Q/K norm, head width 32 apart from dim, tied), F32',
    architecture: 'qwen3',
    vocabulary: 'qwen3',
    config: {
      ...small,
      headDim: 32,
      normEpsilon: 1e-6,
      ropeTheta: 1000000,
      ropeStyle: 'half',
      tiedEmbeddings: true,
      queryKeyNorm: true,
    },
    matrixType: 0,
    tolerance: 2e-3,
    tokenization: false,
  },
];

const GREEDY_STEPS = 50;
const PROMPT = 'Once upon a time, in a land far away,';

describe.skipIf(skipReason !== undefined)('GGUF models against llama.cpp', () => {
  const llama = 'llama' in loaded ? loaded.llama : undefined;
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-llama-cpp-'));
  afterAll(async () => {
    await llama?.dispose();
    rmSync(directory, { recursive: true, force: true });
  });

  for (const testCase of CASES) {
    it(`${testCase.name}: tokens, top-5 log-probabilities and ${GREEDY_STEPS} greedy tokens`, async () => {
      const vocabulary = await realVocabulary(testCase.vocabulary);
      const config = { ...testCase.config, vocabSize: vocabulary.vocabSize } as LlamaConfig;
      const file = path.join(directory, `${testCase.architecture}-${testCase.matrixType}.gguf`);
      writeFileSync(
        file,
        writeGgufCheckpoint(randomCheckpoint(config, 11), {
          architecture: testCase.architecture,
          matrixType: testCase.matrixType,
          metadata: vocabulary.metadata,
        }),
      );
      const gguf = await loadGgufModel(file);
      const tokenizer = gguf.tokenizer!;
      const reference = await llama!.loadModel({ modelPath: file });
      const context = await reference.createContext({ contextSize: 256, batchSize: 64, threads: 1 });
      const model = LlamaModel.create(createCpuBackend(), gguf);
      try {
        if (testCase.tokenization) {
          for (const text of TOKENIZER_CORPUS) {
            expect(tokenizer.encode(text, { bos: false }), JSON.stringify(text)).toEqual(
              Array.from(reference.tokenize(text)),
            );
          }
        }
        const prompt = tokenizer.encode(PROMPT);
        expect(prompt.slice(prompt[0] === tokenizer.bosId ? 1 : 0)).toEqual(
          Array.from(reference.tokenize(PROMPT)),
        );
        // BOS as llama.cpp adds it: Llama 3's file says add it, Qwen's not.
        expect(prompt[0] === tokenizer.bosId).toBe(reference.tokens.shouldPrependBosToken);
        expect(tokenizer.bosId).toBe(reference.tokens.bos as unknown as number);
        const expectedTokens: number[] = [];
        let expectedTop: [number, number][] = [];
        const promptTokens = prompt as unknown as Parameters<typeof reference.detokenize>[0];
        for await (const output of context
          .getSequence()
          .evaluateWithMetadata([...promptTokens], { probabilities: true }, { temperature: 0 })) {
          if (expectedTokens.length === 0) {
            expectedTop = [...output.probabilities.entries()]
              .slice(0, 5)
              .map(([token, probability]) => [token as unknown as number, Math.log(probability)]);
          }
          expectedTokens.push(output.token as unknown as number);
          if (expectedTokens.length === GREEDY_STEPS) break;
        }
        const ours = await greedyDecode(model, prompt, GREEDY_STEPS);
        for (const [token, logProbability] of expectedTop) {
          expect(Math.abs(ours.firstLogits[token]! - logProbability), `token ${token}`).toBeLessThan(
            testCase.tolerance,
          );
        }
        // Identical greedy tokens up to the first step whose top two are closer than the tolerance.
        let compared = 0;
        for (let step = 0; step < GREEDY_STEPS; step++) {
          if (ours.margins[step]! <= testCase.tolerance) break;
          expect(ours.tokens[step], `greedy step ${step}`).toBe(expectedTokens[step]);
          compared++;
        }
        expect(compared).toBeGreaterThan(0);
      } finally {
        model.dispose();
        await context.dispose();
        await reference.dispose();
      }
    }, 180_000);
  }
});
