import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { syntheticCheckpoint, writeLlama2cLegacy } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { UsageError } from '../errors/usage-error.js';
import { runGenerate } from './generate.js';

const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
const models = path.resolve(repoRoot, '../shared/models/stories260K');
const gguf = path.join(models, 'stories260K.gguf');
const hasModel = existsSync(gguf) && existsSync(path.join(models, 'golden.json'));
if (!hasModel) console.warn(`skipped: stories260K model files not found under ${models}`);

describe('deft generate', () => {
  it('prints help and rejects incomplete command lines', async () => {
    const io = recordingIo();
    expect(await runGenerate(['--help'], io)).toBe(0);
    expect(io.output()).toContain('--strategy S');
    await expect(runGenerate(['--prompt', 'x'], recordingIo())).rejects.toSatisfy(UsageError.isInstance);
    await expect(runGenerate(['-m', 'x.gguf', '-p', 'x', '-s', 'few-shot'], recordingIo())).rejects.toThrow(
      /--branch/,
    );
    await expect(runGenerate(['-m', 'x.gguf', '-p', 'x', '-s', 'nope'], recordingIo())).rejects.toThrow(
      /--strategy must be one of/,
    );
  });

  it('says which range and which strategies an option takes', async () => {
    const usage = (args: string[]) => runGenerate(['-m', 'x.gguf', '-p', 'x', ...args], recordingIo());
    await expect(usage(['-n', '-5'])).rejects.toThrow("--max-tokens must be an integer >= 1, got '-5'");
    await expect(usage(['--max-tokens', '-5'])).rejects.toThrow(/--max-tokens must be an integer >= 1/);
    await expect(usage(['-s', 'sample', '--top-p', '-0.5'])).rejects.toThrow(/--top-p must be in \(0, 1\]/);
    await expect(usage(['-s', 'sample', '--top-k', '0'])).rejects.toThrow(
      "--top-k must be an integer >= 1, got '0'",
    );
    await expect(usage(['--width', '3'])).rejects.toThrow(
      '--width does nothing with --strategy greedy; it applies to beam, best-of, tot',
    );
    await expect(usage(['-s', 'beam', '--top-k', '5'])).rejects.toThrow(
      '--top-k does nothing with --strategy beam; it applies to sample, best-of, tot, few-shot',
    );
    await expect(usage(['-s', 'speculative', '--keep', '2'])).rejects.toSatisfy(UsageError.isInstance);
  });

  it('calls a missing tokenizer a tokenizer file and a directory a directory', async () => {
    const missing = recordingIo();
    // A small synthetic checkpoint, so the test does not need the shared model files.
    const checkpoint = path.join(mkdtempSync(path.join(tmpdir(), 'deft-generate-')), 'tiny.bin');
    writeFileSync(checkpoint, writeLlama2cLegacy(syntheticCheckpoint()));
    expect(await runGenerate(['-m', checkpoint, '-t', '/nonexistent/tok.bin', '-p', 'x'], missing)).toBe(1);
    expect(missing.errors()).toMatch(/^deft generate: tokenizer file \/nonexistent\/tok.bin does not exist/);
    const directory = recordingIo();
    expect(await runGenerate(['-m', repoRoot, '-t', repoRoot, '-p', 'x'], directory)).toBe(1);
    expect(directory.errors()).toContain(`${repoRoot} is a directory, expected a model file`);
  });

  it('reports a missing model file as a failure', async () => {
    const io = recordingIo();
    expect(await runGenerate(['-m', '/nonexistent/model.gguf', '-p', 'x'], io)).toBe(1);
    expect(io.errors()).toMatch(/does not exist/);
  });

  describe.skipIf(!hasModel)('stories260K', () => {
    const golden = hasModel
      ? (JSON.parse(readFileSync(path.join(models, 'golden.json'), 'utf8')) as {
          greedyTextStartsWith: string;
        })
      : undefined;

    it('streams the greedy text and ends with the statistics', async () => {
      const io = recordingIo();
      expect(await runGenerate(['-m', gguf, '-p', 'Once upon a time', '-n', '30', '-q'], io)).toBe(0);
      expect(io.output().startsWith(golden!.greedyTextStartsWith.slice(0, 100))).toBe(true);
      expect(io.output()).toMatch(/KV read: tree plan .* sequence baseline/);
    });

    it('prints beams, the tree and JSON for machines', async () => {
      const io = recordingIo();
      expect(
        await runGenerate(['-m', gguf, '-p', 'Lily saw', '-s', 'beam', '--width', '3', '-n', '8'], io),
      ).toBe(0);
      expect(io.output()).toContain('[3] score');
      expect(io.output()).toContain('token tree at the end');
      const json = recordingIo();
      expect(
        await runGenerate(
          ['-m', gguf, '-p', 'Once upon a time', '-s', 'speculative', '-n', '20', '--json'],
          json,
        ),
      ).toBe(0);
      const report = JSON.parse(json.output()) as {
        sequences: { tokens: number[] }[];
        acceptance: { rate: number };
        stats: { kvBytesRead: number };
        tree: { nodes: unknown[] };
      };
      expect(report.sequences[0]!.tokens).toHaveLength(20);
      expect(report.acceptance.rate).toBeGreaterThanOrEqual(0);
      expect(report.tree.nodes.length).toBeGreaterThan(0);
    });

    it("stops cleanly at the model's context length and says why", async () => {
      for (const limit of ['600', '1000000000']) {
        const io = recordingIo();
        const args = ['-m', gguf, '-p', 'Once upon a time', '-n', limit, '--no-stop', '--json'];
        expect(await runGenerate(args, io)).toBe(0);
        const report = JSON.parse(io.output()) as {
          contextLength: number;
          prompt: { tokens: number[] };
          sequences: { tokens: number[]; finishReason: string }[];
        };
        expect(report.contextLength).toBe(512);
        expect(report.prompt.tokens.length + report.sequences[0]!.tokens.length).toBe(512);
        expect(report.sequences[0]!.finishReason).toBe('context');
        expect(io.errors()).toMatch(new RegExp(`context length of 512 tokens .*could not reach -n ${limit}`));
      }
    });

    it('reports tokens/s and the time to the first token, on stderr and in JSON', async () => {
      const io = recordingIo();
      expect(await runGenerate(['-m', gguf, '-p', 'Once upon a time', '-n', '12', '-q'], io)).toBe(0);
      expect(io.errors()).toMatch(
        /^deft generate: 12 tokens in \d+\.\d\d s, \d+\.\d tokens\/s, first token after \d+ ms\n$/,
      );
      const json = recordingIo();
      expect(await runGenerate(['-m', gguf, '-p', 'Once upon a time', '-n', '12', '--json'], json)).toBe(0);
      const { timing } = JSON.parse(json.output()) as {
        timing: { generatedTokens: number; tokensPerSecond: number; firstTokenMilliseconds: number };
      };
      expect(timing.generatedTokens).toBe(12);
      expect(timing.tokensPerSecond).toBeGreaterThan(0);
      expect(timing.firstTokenMilliseconds).toBeGreaterThan(0);
    });

    it('scores every strategy the same way, names the convention, and prints no debug lines', async () => {
      const runs: string[][] = [
        ['-s', 'beam', '--width', '3'],
        ['-s', 'best-of', '--width', '3'],
        ['-s', 'tot', '--width', '2', '--depth', '2'],
        ['-s', 'speculative'],
        ['-s', 'few-shot', '--branch', ' Tom', '--branch', ' a cat'],
      ];
      for (const strategyArgs of runs) {
        const args = ['-m', gguf, '-p', 'Once upon a time', '-n', '8', ...strategyArgs];
        const json = recordingIo();
        expect(await runGenerate([...args, '--json'], json)).toBe(0);
        const report = JSON.parse(json.output()) as {
          scoreConvention: string;
          sequences: { logProbabilities: number[]; score: number; meanLogProb: number }[];
        };
        expect(report.scoreConvention).toMatch(/^sum of the generated tokens' log-probabilities/);
        for (const sequence of report.sequences) {
          const sum = sequence.logProbabilities.reduce((total, value) => total + value, 0);
          expect(sequence.score).toBeCloseTo(sum, 9);
          expect(sequence.meanLogProb).toBeCloseTo(sum / sequence.logProbabilities.length, 9);
        }
        const text = recordingIo();
        expect(await runGenerate([...args, '-q'], text)).toBe(0);
        expect(text.output()).toContain("score: sum of the generated tokens' log-probabilities");
        expect(text.output()).toMatch(/\[1\] score -?\d+\.\d{4}, mean -?\d+\.\d{4}\/token/);
        expect(text.output()).not.toMatch(/branchIndices|\{"|\[\d+(,\d+)+\]/);
        if (strategyArgs[1] === 'speculative') {
          expect(text.output()).toMatch(
            /drafts: \d+ of \d+ draft tokens accepted .*per verification pass \(\d+\)/,
          );
        }
      }
    });

    it('suggests a --pages value that fits when the KV pool runs out', async () => {
      const io = recordingIo();
      const args = ['-m', gguf, '-p', 'Once', '-s', 'beam', '--width', '4', '-n', '40', '-q'];
      expect(await runGenerate([...args, '--pages', '3'], io)).toBe(1);
      const suggested = /run with --pages (\d+)/.exec(io.errors())?.[1];
      expect(suggested).toBeDefined();
      expect(await runGenerate([...args, '--pages', suggested!], recordingIo())).toBe(0);
    });

    it('refuses a prompt longer than the context with one clear line', async () => {
      const io = recordingIo();
      expect(await runGenerate(['-m', gguf, '-p', 'Once upon a time '.repeat(200), '-n', '5'], io)).toBe(1);
      expect(io.errors()).toMatch(/context length is 512.*shorten the prompt/);
    });
  });
});
