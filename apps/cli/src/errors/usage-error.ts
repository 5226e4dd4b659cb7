import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from '@deft/core';

const CODE = 'DEFT_CLI_USAGE';

/**
 * The command line or a workload given to it was wrong: an unknown option, a missing value, a
 * malformed workload file. The `deft` command prints the message on one line and exits with code 2.
 *
 * @example
 * ```ts
 * throw new UsageError("unknown workload 'fewshot': use one of few-shot-b20, …", { argument: '--workload' });
 * ```
 */
export class UsageError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is UsageError {
    return isDeftErrorWithCode(value, CODE);
  }
}
