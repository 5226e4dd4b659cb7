import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_CAPACITY';

/** A pool or buffer has too little room for the request. Nothing was allocated or changed. */
export class CapacityError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is CapacityError {
    return isDeftErrorWithCode(value, CODE);
  }
}
