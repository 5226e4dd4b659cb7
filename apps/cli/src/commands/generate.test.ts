import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

    it('refuses a prompt longer than the context with one clear line', async () => {
      const io = recordingIo();
      expect(await runGenerate(['-m', gguf, '-p', 'Once upon a time '.repeat(200), '-n', '5'], io)).toBe(1);
      expect(io.errors()).toMatch(/context length is 512.*shorten the prompt/);
    });
  });
});
