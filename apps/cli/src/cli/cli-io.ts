import { writeSync } from 'node:fs';

/**
 * Where a command writes and what it knows about its terminal. The `deft` process uses
 * {@link processIo}; tests pass a recording implementation.
 */
export interface CliIo {
  /** Writes text to standard output as is (add the newline yourself). */
  readonly stdout: (text: string) => void;
  /** Writes text to standard error as is. */
  readonly stderr: (text: string) => void;
  /** True when standard error is an interactive terminal (progress lines are redrawn in place). */
  readonly stderrIsTerminal: boolean;
  /** Directory relative paths are resolved against. */
  readonly cwd: string;
}

/** The real process's streams. Writes are synchronous so output is never lost on exit. */
export function processIo(): CliIo {
  return {
    stdout: (text) => writeAll(1, text),
    stderr: (text) => writeAll(2, text),
    stderrIsTerminal: process.stderr.isTTY === true,
    cwd: process.cwd(),
  };
}

function writeAll(descriptor: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(descriptor, bytes, offset);
    } catch (error) {
      // A non-blocking pipe that is full: try again; a closed pipe (EPIPE): stop writing.
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      return;
    }
  }
}

/** A {@link CliIo} that records everything written, for tests. */
export interface RecordingIo extends CliIo {
  readonly output: () => string;
  readonly errors: () => string;
}

/** Creates a {@link RecordingIo}. */
export function recordingIo(cwd = process.cwd()): RecordingIo {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    stderrIsTerminal: false,
    cwd,
    output: () => out.join(''),
    errors: () => err.join(''),
  };
}
