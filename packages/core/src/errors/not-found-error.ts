import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_NOT_FOUND';

/** A referenced object (node, page, file, tensor) does not exist or no longer exists. Nothing was changed. */
export class NotFoundError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is NotFoundError {
    return isDeftErrorWithCode(value, CODE);
  }
}
