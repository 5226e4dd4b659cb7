import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChatTemplate, loadGgufModel } from '@deft/model';
import { hasStories260K, stories260K, stories260KSkipReason, tinyLlama3Gguf } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { UsageError } from '../errors/usage-error.js';
import type { RunningServer } from '../serve/openai-server.js';
import { get, post } from '../serve/server-test-kit.js';
import { runServe } from './serve.js';

/** Runs `deft serve` with `args` until `use` is done with the listening server. */
async function withServe(args: string[], use: (server: RunningServer, errors: string) => Promise<void>) {
  const io = recordingIo();
  const stop = new AbortController();
  let server: RunningServer | undefined;
  const exit = runServe([...args, '--backend', 'cpu', '--port', '0'], io, {
    signal: stop.signal,
    onListening: (listening) => {
      server = listening;
    },
  });
  try {
    while (server === undefined) {
      const early = await Promise.race([exit, new Promise((resolve) => setTimeout(resolve, 10, 'waiting'))]);
      if (early !== 'waiting') throw new Error(`deft serve ended before listening: ${io.errors()}`);
    }
    await use(server, io.errors());
  } finally {
    stop.abort();
  }
  expect(await exit).toBe(0);
}

describe('deft serve', () => {
  it('prints help and refuses bad command lines', async () => {
    const io = recordingIo();
    expect(await runServe(['--help'], io)).toBe(0);
    expect(io.output()).toContain('--api-key KEY');
    await expect(runServe([], recordingIo())).rejects.toSatisfy(UsageError.isInstance);
    await expect(runServe(['-m', 'x.gguf', '--port', '70000'], recordingIo())).rejects.toThrow(/--port/);
    await expect(runServe(['-m', 'x.gguf', '--backend', 'tpu'], recordingIo())).rejects.toThrow(
      /--backend must be one of auto, cpu, webgpu, cuda/,
    );
    await expect(
      runServe(['-m', '/nonexistent/model.gguf', '--backend', 'cpu'], recordingIo()),
    ).rejects.toThrow(/does not exist/);
  });

  it.skipIf(!hasStories260K)(
    `serves a model on 127.0.0.1 until stopped, with an API key (${hasStories260K ? 'stories260K' : stories260KSkipReason})`,
    async () => {
      await withServe(['-m', stories260K.gguf, '--api-key', 'k', '--pages', '64'], async (server, errors) => {
        expect(errors).toMatch(/^deft serve: stories260K on CPU reference at http:\/\/127\.0\.0\.1:\d+/);
        expect(errors).toContain('chat template: plain');
        expect((await get(server, '/health')).status).toBe(200);
        expect((await get(server, '/v1/models')).status).toBe(401);
        const completion = await post(
          server,
          '/v1/completions',
          { prompt: 'Once upon a time', max_tokens: 5, temperature: 0 },
          { authorization: 'Bearer k' },
        );
        expect(completion.body.choices[0]!.text).toBe(', there was a little');
      });
    },
  );

  it.skipIf(!hasStories260K)('takes a tokenizer.json as --tokenizer, as deft generate does', async () => {
    // A byte-level BPE tokenizer.json of 600 tokens, more than stories260K's 512.
    const vocab = Object.fromEntries(Array.from({ length: 600 }, (_, id) => [`t${id}`, id]));
    const tokenizerJson = {
      model: { type: 'BPE', vocab, merges: [] },
      added_tokens: [],
      pre_tokenizer: { type: 'ByteLevel' },
    };
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-serve-'));
    try {
      const file = path.join(directory, 'tokenizer.json');
      writeFileSync(file, JSON.stringify(tokenizerJson));
      // Read as a tokenizer.json (not as a llama2.c file): refused for its size, naming both sizes.
      await expect(
        runServe(['-m', stories260K.gguf, '-t', file, '--backend', 'cpu', '--port', '0'], recordingIo()),
      ).rejects.toThrow('has 600 tokens but the model only 512');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("renders chat with the GGUF's own chat template (a tiny Llama 3 with the real vocabulary)", async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-serve-'));
    try {
      const file = path.join(directory, 'llama3-tiny.gguf');
      writeFileSync(file, await tinyLlama3Gguf());
      const gguf = await loadGgufModel(file);
      const template = ChatTemplate.fromGgufMetadata(gguf.metadata, gguf.tokenizer!)!;
      const messages = [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Name a color.' },
      ];
      await withServe(['-m', file, '--pages', '64'], async (server, errors) => {
        expect(errors).toContain("chat template: the model's (tokenizer.chat_template)");
        const reply = await post(server, '/v1/chat/completions', { messages, max_tokens: 3, temperature: 0 });
        expect(reply.status).toBe(200);
        expect(reply.body.usage!.prompt_tokens).toBe(template.encode(messages).length);
      });
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }, 60_000);
});
