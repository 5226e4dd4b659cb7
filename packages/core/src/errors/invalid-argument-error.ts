import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_INVALID_ARGUMENT';

/**
 * An argument was malformed or out of range. Nothing was changed.
 *
 * @example
 * ```ts
 * throw new InvalidArgumentError('count must be a positive integer', { argument: 'count', expected: '>= 1', actual: 0 });
 * ```
 */
export class InvalidArgumentError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is InvalidArgumentError {
    return isDeftErrorWithCode(value, CODE);
  }
}
