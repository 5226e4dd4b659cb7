import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_INVALID_STATE';

/**
 * The operation is not allowed in the object's current state (appending to an internal node,
 * pruning the root). Nothing was changed.
 */
export class InvalidStateError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is InvalidStateError {
    return isDeftErrorWithCode(value, CODE);
  }
}
