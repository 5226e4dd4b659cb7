import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from '../errors/usage-error.js';

/** Options of a command, in `node:util` `parseArgs` form (`--help` is added by {@link parseCommandLine}). */
export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

/** Parsed option values by long name. */
export type OptionValues = Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;

/** What {@link parseCommandLine} found: `help` when `--help` / `-h` was given. */
export interface ParsedCommandLine {
  readonly help: boolean;
  readonly values: OptionValues;
}

/**
 * Parses a command's arguments strictly with `node:util` `parseArgs`: no positionals, no unknown options.
 *
 * @throws {UsageError} with a one-line message naming the offending option (exit code 2).
 * @example
 * ```ts
 * const { help, values } = parseCommandLine('plan', ['--workload', 'sd-t64'], { workload: { type: 'string' } });
 * ```
 */
export function parseCommandLine(
  command: string,
  argv: readonly string[],
  options: OptionSpecs,
): ParsedCommandLine {
  let parsed: { values: Record<string, unknown> };
  try {
    parsed = parseArgs({
      args: attachNegativeNumbers(argv, options),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(`${describeParseError(error)} (see 'deft ${command} --help')`, { cause: error });
  }
  const values = parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>;
  return { help: values.help === true, values };
}

/**
 * `parseArgs` takes `-5` after `-n` for an option and calls the value ambiguous. A string option followed by
 * something that reads as a negative number gets it as its value (`-n -5` becomes `--max-tokens=-5`), so
 * the option's own check can say which range it takes.
 */
function attachNegativeNumbers(argv: readonly string[], options: OptionSpecs): string[] {
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options))
    if (spec.short !== undefined) byShort.set(spec.short, name);
  const result: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    const next = argv[index + 1];
    const name = argument.startsWith('--')
      ? argument.slice(2)
      : /^-[^-]$/.test(argument)
        ? byShort.get(argument.slice(1))
        : undefined;
    if (
      name !== undefined &&
      options[name]?.type === 'string' &&
      next !== undefined &&
      /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      result.push(`--${name}=${next}`);
      index++;
    } else {
      result.push(argument);
    }
  }
  return result;
}

function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Node's messages add a hint sentence after the first one; keep the first, lower-cased.
  const firstSentence = message.split(/\.\s/)[0]!.replace(/\.$/, '');
  return firstSentence.charAt(0).toLowerCase() + firstSentence.slice(1);
}

/** A string option, or `undefined` when absent. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new UsageError(`--${name} needs a value`, { argument: `--${name}` });
  return value;
}

/** A required string option. @throws {UsageError} when absent. */
export function requiredStringOption(values: OptionValues, name: string, command: string): string {
  const value = stringOption(values, name);
  if (value === undefined || value === '') {
    throw new UsageError(`missing --${name} (see 'deft ${command} --help')`, { argument: `--${name}` });
  }
  return value;
}

/** An integer option `>= minimum`, or `undefined` when absent. @throws {UsageError} on anything else. */
export function integerOption(values: OptionValues, name: string, minimum: number): number | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const value = /^-?\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new UsageError(`--${name} must be an integer >= ${minimum}, got '${text}'`, {
      argument: `--${name}`,
      expected: `integer >= ${minimum}`,
      actual: text,
    });
  }
  return value;
}

/** One of `choices`, or `undefined` when absent. @throws {UsageError} naming the choices otherwise. */
export function choiceOption<T extends string>(
  values: OptionValues,
  name: string,
  choices: readonly T[],
): T | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${text}'`, {
      argument: `--${name}`,
      expected: choices,
      actual: text,
    });
  }
  return text as T;
}

/** A comma-separated list option (empty items dropped), or `undefined` when absent. */
export function listOption(values: OptionValues, name: string): string[] | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0)
    throw new UsageError(`--${name} needs at least one item`, { argument: `--${name}` });
  return items;
}
