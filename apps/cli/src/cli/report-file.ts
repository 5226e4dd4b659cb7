import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors/usage-error.js';
import type { CliIo } from './cli-io.js';

/**
 * Checks, before any work starts, that `file` can be written: its directory exists and is writable, and
 * it is not itself a directory.
 * @throws UsageError naming the option and what to fix.
 */
export function checkOutputPath(file: string, option: string): void {
  const directory = path.dirname(file);
  let problem: string | undefined;
  try {
    if (!statSync(directory).isDirectory()) problem = `${directory} is not a directory`;
    else accessSync(directory, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problem =
      code === 'ENOENT'
        ? `the directory ${directory} does not exist`
        : code === 'EACCES' || code === 'EPERM'
          ? `the directory ${directory} is not writable`
          : (error as Error).message;
  }
  if (problem === undefined) {
    try {
      if (statSync(file).isDirectory()) problem = `${file} is a directory`;
    } catch {
      // absent: it will be created
    }
  }
  if (problem !== undefined) {
    throw new UsageError(`${option} ${file}: ${problem}; create the directory or choose another path`, {
      argument: option,
      expected: 'a writable file path',
      actual: file,
    });
  }
}

/**
 * Writes a bench's JSON report after its table was printed, so a failure here (the disk filled, the
 * directory went away) loses nothing shown: it says so on stderr and returns false.
 */
export function writeReportAfterTable(io: CliIo, command: string, file: string, json: string): boolean {
  try {
    writeFileSync(path.resolve(io.cwd, file), json);
  } catch (error) {
    io.stderr(
      `deft ${command}: could not write ${file} (${(error as Error).message}); the table above holds the results\n`,
    );
    return false;
  }
  io.stdout(`\nwrote ${file}\n`);
  return true;
}
