import type { CliIo } from '../cli/cli-io.js';
import { type OptionValues, requiredStringOption, stringOption } from '../cli/parse-command-line.js';

/** A path option resolved against the command's working directory (absolute paths kept). */
export function resolveCliPath(io: CliIo, path: string): string {
  return path.startsWith('/') ? path : `${io.cwd}/${path}`;
}

/**
 * The `--model` (required) and `--tokenizer` (optional) files of a command, resolved against its working
 * directory.
 *
 * @throws {UsageError} when `--model` is missing.
 */
export function modelFileOptions(
  values: OptionValues,
  io: CliIo,
  command: string,
): { readonly modelPath: string; readonly tokenizerPath: string | undefined } {
  const tokenizer = stringOption(values, 'tokenizer');
  return {
    modelPath: resolveCliPath(io, requiredStringOption(values, 'model', command)),
    tokenizerPath: tokenizer === undefined ? undefined : resolveCliPath(io, tokenizer),
  };
}
