import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadGgufModel } from '@deft/model';
import {
  randomCheckpoint,
  realVocabulary,
  syntheticCheckpoint,
  tinyLlama3Gguf,
  writeGgufCheckpoint,
  writeLlama2cLegacy,
} from '@deft/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { UsageError } from '../errors/usage-error.js';
import { runGenerate } from './generate.js';

const directory = mkdtempSync(path.join(tmpdir(), 'deft-generate-chat-'));
const model = path.join(directory, 'llama3-tiny.gguf');

describe('deft generate --chat', () => {
  beforeAll(async () => {
    // A tiny Llama 3 with the real vocabulary and chat template, seeded random weights.
    writeFileSync(model, await tinyLlama3Gguf());
  }, 60_000);

  it('renders the conversation with the file template, from flags or a JSON file', async () => {
    const io = recordingIo();
    const args = ['-m', model, '--chat', '--system', 'Be brief.', '-p', 'Name a color.', '-n', '3', '--json'];
    expect(await runGenerate(args, io)).toBe(0);
    const result = JSON.parse(io.output());
    expect(result.prompt.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Name a color.' },
    ]);
    expect(result.prompt.text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    const tokenizer = (await loadGgufModel(model)).tokenizer!;
    expect(result.prompt.tokens).toEqual(tokenizer.encode(result.prompt.text, { bos: false, special: true }));
    expect(result.prompt.tokens.filter((id: number) => id === 128000)).toHaveLength(1);
    expect(result.prompt.tokens).toContain(128009);

    const file = path.join(directory, 'messages.json');
    writeFileSync(
      file,
      JSON.stringify([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Name a color.' },
      ]),
    );
    const fromFile = recordingIo();
    expect(
      await runGenerate(['-m', model, '--chat', '--messages', file, '-n', '3', '--json'], fromFile),
    ).toBe(0);
    expect(JSON.parse(fromFile.output()).prompt.tokens).toEqual(result.prompt.tokens);
  }, 60_000);

  it('shows a load progress bar on a terminal', async () => {
    const io = { ...recordingIo(), stderrIsTerminal: true };
    const terminal = recordingIo();
    const tty = { ...io, stderr: terminal.stderr };
    expect(await runGenerate(['-m', model, '-p', 'Hi', '-n', '2'], tty)).toBe(0);
    expect(terminal.errors()).toMatch(/loading llama3-tiny\.gguf \[#+\] 100% .* of .*, \d+\/\d+ tensors/);
    const quiet = { ...recordingIo(), stderrIsTerminal: true };
    const quietErrors = recordingIo();
    expect(
      await runGenerate(['-m', model, '-p', 'Hi', '-n', '2', '-q'], { ...quiet, stderr: quietErrors.stderr }),
    ).toBe(0);
    expect(quietErrors.errors()).not.toContain('loading');
  }, 60_000);

  it('takes a tokenizer.json with --tokenizer', async () => {
    const vocabulary = await realVocabulary('llama3');
    const file = path.join(directory, 'tokenizer.json');
    writeFileSync(file, JSON.stringify(vocabulary.tokenizerJson));
    const [withFile, withOwn] = [recordingIo(), recordingIo()];
    expect(
      await runGenerate(['-m', model, '-t', file, '-p', 'Hello world', '-n', '2', '--json'], withFile),
    ).toBe(0);
    expect(await runGenerate(['-m', model, '-p', 'Hello world', '-n', '2', '--json'], withOwn)).toBe(0);
    const tokens = (io: ReturnType<typeof recordingIo>) => JSON.parse(io.output()).prompt.tokens as number[];
    // tokenizer.json adds no BOS here (its post-processor does not say to); the GGUF does.
    expect(tokens(withFile)).toEqual(tokens(withOwn).slice(1));
  }, 60_000);

  it('refuses what a chat cannot use, with usage errors', async () => {
    const usage = (args: string[]) => runGenerate(args, recordingIo());
    await expect(usage(['-m', model, '-p', 'x', '--system', 'y'])).rejects.toThrow(
      '--system applies to chat generation; add --chat',
    );
    await expect(usage(['-m', model, '--chat'])).rejects.toThrow(/--chat needs a user message/);
    await expect(
      usage(['-m', model, '--chat', '--messages', path.join(directory, 'none.json')]),
    ).rejects.toThrow(/cannot be read/);
    const bad = path.join(directory, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ role: 'user' }]));
    await expect(usage(['-m', model, '--chat', '--messages', bad])).rejects.toThrow(/message 0 must be/);
    const checkpoint = path.join(directory, 'tiny.bin');
    writeFileSync(checkpoint, writeLlama2cLegacy(syntheticCheckpoint()));
    await expect(usage(['-m', checkpoint, '-t', 'tok.bin', '--chat', '-p', 'x'])).rejects.toThrow(
      /--chat needs a GGUF model/,
    );
    const plain = path.join(directory, 'no-template.gguf');
    const vocabulary = await realVocabulary('llama3');
    const { 'tokenizer.chat_template': _, ...withoutTemplate } = vocabulary.metadata;
    writeFileSync(
      plain,
      writeGgufCheckpoint(
        randomCheckpoint({ ...syntheticCheckpoint().config, dim: 8, vocabSize: vocabulary.vocabSize }, 2),
        { metadata: withoutTemplate },
      ),
    );
    await expect(usage(['-m', plain, '--chat', '-p', 'x'])).rejects.toSatisfy(
      (error: unknown) =>
        UsageError.isInstance(error) && /has no chat template/.test((error as Error).message),
    );
  }, 60_000);
});
