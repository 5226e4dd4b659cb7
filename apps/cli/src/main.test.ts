import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingIo } from './cli/cli-io.js';
import { main } from './main.js';

async function run(argv: string[], cwd?: string) {
  const io = recordingIo(cwd);
  const code = await main(argv, io);
  return { code, out: io.output(), err: io.errors() };
}

describe('deft command line', () => {
  it('prints help for the program and every command', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['bench', 'plan', 'attn', 'generate']) expect(top.out).toContain(command);
    for (const command of ['bench', 'plan', 'attn', 'generate']) {
      const help = await run([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.out).toMatch(new RegExp(`^Usage: deft ${command}`));
      expect((await run(['help', command])).out).toBe(help.out);
    }
  });

  it.each([
    [
      ['plan', '--workload', 'sd-t64', '--bogus'],
      /^deft plan: unknown option '--bogus' \(see 'deft plan --help'\)\n$/,
    ],
    [['attn', '--frobnicate'], /^deft attn: unknown option '--frobnicate'/],
    [['bench', '--json'], /^deft bench: option '--json <value>' argument missing/],
    [['plan'], /^deft plan: missing --workload/],
    [['plan', '--workload', 'sd-t64', 'extra'], /^deft plan: unexpected argument 'extra'/],
    [
      ['plan', '--workload', 'sd-t64', '--strategy', 'fast'],
      /^deft plan: --strategy must be one of deft-flatten/,
    ],
    [
      ['plan', '--workload', 'sd-t64', '--page-size', '0'],
      /^deft plan: --page-size must be an integer >= 1, got '0'/,
    ],
    [['plan', '--workload', 'no-such-workload'], /^deft plan: unknown workload 'no-such-workload'/],
    [['bench', '--backend', 'tpu'], /^deft bench: --backend must be one of auto, cpu, webgpu, cuda/],
    [['bench', '--strategies', 'deft-flatten,magic'], /^deft bench: --strategies: unknown strategy 'magic'/],
    [['frobnicate'], /^deft: unknown command 'frobnicate'/],
  ])('%j is a one-line usage error with exit code 2', async (argv, message) => {
    const result = await run(argv);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(message);
    expect(result.err.trimEnd().split('\n')).toHaveLength(1);
  });

  it('rejects a malformed workload file with a one-line error naming the field', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-cli-'));
    const file = path.join(directory, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'bad',
        heads: 4,
        kvHeads: 2,
        headDim: 8,
        dtype: 'f32',
        seed: 1,
        nodes: [{ parent: -1, tokens: 3.5 }],
      }),
    );
    const result = await run(['plan', '--workload', 'bad.json'], directory);
    expect(result.code).toBe(2);
    expect(result.err).toBe(
      'deft plan: workload bad.json: nodes[0].tokens must be an integer >= 1, got 3.5\n',
    );
    writeFileSync(file, '{"name": "x",');
    const broken = await run(['attn', '--workload', file]);
    expect(broken.code).toBe(2);
    expect(broken.err).toMatch(/^deft attn: workload .*bad\.json: workload is not valid JSON/);
  });
});
