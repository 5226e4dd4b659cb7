import { hasStories260K, stories260K, stories260KSkipReason } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli/cli-io.js';
import { UsageError } from '../errors/usage-error.js';
import type { RunningServer } from '../serve/openai-server.js';
import { get, post } from '../serve/server-test-kit.js';
import { runServe } from './serve.js';

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
      const io = recordingIo();
      const stop = new AbortController();
      let server: RunningServer | undefined;
      const exit = runServe(
        ['-m', stories260K.gguf, '--backend', 'cpu', '--port', '0', '--api-key', 'k', '--pages', '64'],
        io,
        {
          signal: stop.signal,
          onListening: (listening) => {
            server = listening;
          },
        },
      );
      while (server === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(io.errors()).toMatch(/^deft serve: stories260K on CPU reference at http:\/\/127\.0\.0\.1:\d+/);
      expect((await get(server, '/health')).status).toBe(200);
      expect((await get(server, '/v1/models')).status).toBe(401);
      const completion = await post(
        server,
        '/v1/completions',
        { prompt: 'Once upon a time', max_tokens: 5, temperature: 0 },
        { authorization: 'Bearer k' },
      );
      expect(completion.body.choices[0]!.text).toBe(', there was a little');
      stop.abort();
      expect(await exit).toBe(0);
    },
  );
});
