import type { CliIo } from './cli-io.js';

/** Reports progress through a known number of items on standard error. */
export interface Progress {
  /** Announces that item `label` starts (on a terminal: redraws the status line). */
  start(label: string): void;
  /** Reports that the current item finished, with a short result (`"1.23 ms"`). */
  done(result: string): void;
  /** Clears the status line (terminal) once everything is done. */
  finish(): void;
}

/**
 * A progress display: on a terminal, one status line redrawn in place (`[ 3/24] few-shot-b20 deft-node …`);
 * elsewhere one plain line per finished item (`[3/24] few-shot-b20 deft-node: 1.23 ms`), so logs stay readable.
 * Silent when `enabled` is false.
 *
 * @example
 * ```ts
 * const progress = createProgress(io, 24);
 * progress.start('sd-t64 sequence'); progress.done('2.1 ms'); progress.finish();
 * ```
 */
export function createProgress(io: CliIo, total: number, enabled = true): Progress {
  let index = 0;
  let current = '';
  let startedAt = 0;
  const width = String(total).length;
  const counter = () => `[${String(index).padStart(width)}/${total}]`;
  if (!enabled) return { start() {}, done() {}, finish() {} };
  if (io.stderrIsTerminal) {
    return {
      start(label) {
        index++;
        current = label;
        startedAt = performance.now();
        io.stderr(`\r\x1b[2K${counter()} ${label} …`);
      },
      done(result) {
        const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
        io.stderr(`\r\x1b[2K${counter()} ${current}: ${result} (${seconds} s)`);
      },
      finish() {
        io.stderr('\r\x1b[2K');
      },
    };
  }
  return {
    start(label) {
      index++;
      current = label;
    },
    done(result) {
      io.stderr(`${counter()} ${current}: ${result}\n`);
    },
    finish() {},
  };
}
