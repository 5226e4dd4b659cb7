import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DeftError } from '@deft/core';
import { type CliIo, processIo } from './cli/cli-io.js';
import { UsageError } from './errors/usage-error.js';

/** Exit codes of `deft`. */
export const EXIT_CODES = { ok: 0, failure: 1, usage: 2 } as const;

/** A subcommand: its one-line summary and its implementation, loaded only when it runs. */
interface Command {
  readonly name: string;
  readonly summary: string;
  readonly run: (argv: readonly string[], io: CliIo) => Promise<number>;
}

const COMMANDS: readonly Command[] = [
  {
    name: 'bench',
    summary: 'the main job: time and KV bytes of every strategy on every workload vs the sequence baseline',
    run: async (argv, io) => (await import('./commands/bench.js')).runBenchCommand(argv, io),
  },
  {
    name: 'bench-e2e',
    summary: 'whole decoding steps of a Llama-shaped model (random weights) on each workload vs sequence',
    run: async (argv, io) => (await import('./commands/bench-e2e.js')).runBenchE2e(argv, io),
  },
  {
    name: 'plan',
    summary: 'plan statistics and the IO model of a workload (chunks, partials, KV bytes read)',
    run: async (argv, io) => (await import('./commands/plan.js')).runPlanCommand(argv, io),
  },
  {
    name: 'attn',
    summary: 'one layer of tree attention on random Q/K/V; --check against the reference, --dump to files',
    run: async (argv, io) => (await import('./commands/attn.js')).runAttnCommand(argv, io),
  },
  {
    name: 'generate',
    summary: 'generate text with a model and a tree search (beam, best-of-N, speculative, ToT)',
    run: async (argv, io) => (await import('./commands/generate.js')).runGenerate([...argv], io),
  },
  {
    name: 'serve',
    summary: 'an OpenAI-compatible HTTP server: concurrent requests decode together in one token tree',
    run: async (argv, io) => (await import('./commands/serve.js')).runServe(argv, io),
  },
];

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return `Usage: deft <command> [options]

DeFT tree attention from the command line: plan a decoding tree, run one layer of tree attention, or
benchmark every strategy against the sequence baseline.

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`).join('\n')}

Run 'deft <command> --help' for a command's options. Exit codes: 0 success, 1 failure, 2 usage error.
`;
}

/**
 * Runs the `deft` command line in-process and resolves to its exit code (0 success, 1 failure,
 * 2 usage error). Never throws: errors are written to `io.stderr` as one line.
 *
 * @param argv Arguments after `deft`, e.g. `['plan', '--workload', 'sd-t64']`.
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((command) => command.name === rest[0]) : undefined;
    if (topic !== undefined) return main([topic.name, '--help'], io);
    io.stdout(topLevelHelp());
    return name === undefined ? EXIT_CODES.usage : EXIT_CODES.ok;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (command === undefined) {
    io.stderr(
      `deft: unknown command '${name}' (commands: ${COMMANDS.map((candidate) => candidate.name).join(', ')}; see 'deft --help')\n`,
    );
    return EXIT_CODES.usage;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    return reportError(command.name, error, io);
  }
}

function reportError(command: string, error: unknown, io: CliIo): number {
  if (UsageError.isInstance(error)) {
    io.stderr(`deft ${command}: ${oneLine(error.message)}\n`);
    return EXIT_CODES.usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  const kind = DeftError.isInstance(error) ? error.name : error instanceof Error ? error.name : 'error';
  io.stderr(`deft ${command}: ${kind}: ${oneLine(message)}\n`);
  if (process.env.DEFT_DEBUG && error instanceof Error && error.stack) io.stderr(`${error.stack}\n`);
  return EXIT_CODES.failure;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await main(process.argv.slice(2));
}
