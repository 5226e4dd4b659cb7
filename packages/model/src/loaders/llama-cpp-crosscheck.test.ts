import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCpuBackend } from '@deft/kernels-cpu';
import {
  greedyDecode,
  prefillLogits,
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
  /** A real vocabulary, or `spm`: a small SentencePiece one (bytes and letters), for wide quantized models. */
  readonly vocabulary: RealVocabularyName | 'spm';
  readonly config: Omit<LlamaConfig, 'vocabSize'>;
  /** GGML type of the matrices (0 F32, 1 F16, or a block quantization). */
  readonly matrixType: number;
  /** Largest difference allowed between the two log-probabilities of a top-5 token. */
  readonly tolerance: number;
  /** Fewest of the 50 greedy steps whose margin must exceed the tolerance (so the comparison means something). */
  readonly minimumCompared: number;
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
    minimumCompared: 40,
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
    tolerance: 5e-3,
    minimumCompared: 40,
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
    tolerance: 5e-3,
    minimumCompared: 40,
    tokenization: false,
  },
];

/** Llama with K-quant-sized rows (256) and a small SentencePiece vocabulary, in each weight type. */
const wide = {
  ...small,
  dim: 256,
  hiddenDim: 512,
  headDim: 64,
  ropeTheta: 10000,
  ropeStyle: 'interleaved' as const,
  tiedEmbeddings: false,
};
/** Each architecture with its own settings, at K-quant-sized rows. */
const WIDE_ARCHITECTURES: [string, CrossCheckCase['architecture'], CrossCheckCase['config']][] = [
  [
    'Llama 3 (rope_freqs)',
    'llama',
    {
      ...wide,
      ropeTheta: 500000,
      ropeFrequencyFactors: new Float32Array(32).map((_, pair) => 1 + (pair % 5)),
    },
  ],
  ['Qwen 2 (QKV bias)', 'qwen2', { ...wide, ropeStyle: 'half', attentionBias: true, normEpsilon: 1e-6 }],
  [
    'Qwen 3 (Q/K norms, 8 heads of 64 beside width 256)',
    'qwen3',
    {
      ...wide,
      ropeStyle: 'half',
      queryKeyNorm: true,
      numHeads: 8,
      headDim: 64,
      normEpsilon: 1e-6,
    },
  ],
];
// llama.cpp quantizes the activations too (to 8 bits) inside its quantized matmuls (and to f16 for F16
// weights); this does not.
for (const [architectureName, architecture, config] of WIDE_ARCHITECTURES) {
  for (const [typeName, matrixType] of [
    ['F16', 1],
    ['Q8_0', 8],
    ['Q4_0', 2],
    ['Q4_1', 3],
    ['Q5_0', 6],
    ['Q5_1', 7],
    ['Q4_K', 12],
    ['Q5_K', 13],
    ['Q6_K', 14],
  ] as const) {
    CASES.push({
      name: `${architectureName}, ${typeName}${matrixType === 1 ? '' : ' kept quantized'}`,
      architecture,
      vocabulary: 'spm',
      config,
      matrixType,
      // F16: llama.cpp rounds the activations to f16 too, and the drift grows along the 50 steps.
      tolerance: matrixType === 1 ? 0.02 : 0.03,
      // Random weights over 512 tokens give flat distributions: few steps clear the tolerance.
      minimumCompared: 3,
      tokenization: false,
    });
  }
}

/** A SentencePiece vocabulary of 512 pieces: unknown, BOS, EOS, the 256 bytes, letters and pairs. */
function spmPieces(): string[] {
  const pieces = ['<unk>', '<s>', '</s>'];
  for (let byte = 0; byte < 256; byte++)
    pieces.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (const letter of letters) pieces.push(letter, `\u2581${letter}`);
  for (let index = 0; pieces.length < 512; index++)
    pieces.push(`${letters[index % 26]}${letters[Math.floor(index / 26) % 26]}`);
  return pieces;
}

const GREEDY_STEPS = 50;
/** Lower case, so the small SentencePiece vocabulary spells it with letters rather than bytes. */
const PROMPT = 'once upon a time, in a land far away,';

describe.skipIf(skipReason !== undefined)('GGUF models against llama.cpp', () => {
  const llama = 'llama' in loaded ? loaded.llama : undefined;
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-llama-cpp-'));
  afterAll(async () => {
    await llama?.dispose();
    rmSync(directory, { recursive: true, force: true });
  });

  for (const testCase of CASES) {
    it(`${testCase.name}: tokens, top-5 log-probabilities and ${GREEDY_STEPS} greedy tokens`, async () => {
      const vocabulary =
        testCase.vocabulary === 'spm' ? undefined : await realVocabulary(testCase.vocabulary);
      const pieces = vocabulary === undefined ? spmPieces() : undefined;
      const vocabSize = vocabulary?.vocabSize ?? pieces!.length;
      const config = { ...testCase.config, vocabSize } as LlamaConfig;
      const file = path.join(directory, `${testCase.architecture}-${testCase.matrixType}.gguf`);
      writeFileSync(
        file,
        writeGgufCheckpoint(randomCheckpoint(config, 11), {
          architecture: testCase.architecture,
          matrixType: testCase.matrixType,
          ...(vocabulary === undefined ? { tokens: pieces! } : { metadata: vocabulary.metadata }),
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
        if (testCase.vocabulary === 'spm' && testCase.matrixType === 8 && testCase.architecture === 'llama') {
          // SentencePiece with special tokens in the text: a space prefix after each, as llama.cpp adds it.
          for (const text of ['<s>abc</s>def', 'x <s> y', '</s>', 'ab<s>']) {
            expect(tokenizer.encode(text, { bos: false, special: true }), text).toEqual(
              Array.from(reference.tokenize(text, true)),
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
            // Probabilities that underflowed to 0 in llama.cpp's f32 softmax say nothing about the logit.
            expectedTop = [...output.probabilities.entries()]
              .filter(([, probability]) => probability > 1e-30)
              .slice(0, 5)
              .map(([token, probability]) => [token as unknown as number, Math.log(probability)]);
          }
          expectedTokens.push(output.token as unknown as number);
          if (expectedTokens.length === GREEDY_STEPS) break;
        }
        // Our free-running greedy decoding, and our log-probabilities along llama.cpp's greedy path.
        const ours = await greedyDecode(model, prompt, GREEDY_STEPS);
        for (const [token, logProbability] of expectedTop) {
          expect(Math.abs(ours.firstLogits[token]! - logProbability), `token ${token}`).toBeLessThan(
            testCase.tolerance,
          );
        }
        let same = 0;
        while (same < GREEDY_STEPS && ours.tokens[same] === expectedTokens[same]) same++;
        // Along llama.cpp's path, every step whose top two differ by more than twice the tolerance picks its token.
        const path = [...prompt, ...expectedTokens.slice(0, -1)];
        const logits = await prefillLogits(model, path);
        const vocabSize = model.config.vocabSize;
        let compared = 0;
        for (let step = 0; step < expectedTokens.length; step++) {
          const row = logits.subarray(
            (prompt.length - 1 + step) * vocabSize,
            (prompt.length + step) * vocabSize,
          );
          let best = 0;
          for (let index = 1; index < vocabSize; index++) if (row[index]! > row[best]!) best = index;
          let second = Number.NEGATIVE_INFINITY;
          for (let index = 0; index < vocabSize; index++)
            if (index !== best) second = Math.max(second, row[index]!);
          // Each log-probability may be off by the tolerance, so a margin under twice it can flip.
          if (row[best]! - second <= 2 * testCase.tolerance) continue;
          expect(best, `greedy step ${step}`).toBe(expectedTokens[step]);
          compared++;
        }
        expect(compared).toBeGreaterThanOrEqual(testCase.minimumCompared);
        // Free-running, both decode the same tokens up to the first near-tie at least.
        const firstTie = ours.margins.findIndex((margin) => margin <= 2 * testCase.tolerance);
        expect(same).toBeGreaterThanOrEqual(firstTie === -1 ? GREEDY_STEPS : firstTie);
      } finally {
        model.dispose();
        await context.dispose();
        await reference.dispose();
      }
    }, 180_000);
  }
});
