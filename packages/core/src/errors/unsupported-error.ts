import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_UNSUPPORTED';

/** The backend, file or model uses a feature this build does not support (a dtype, an architecture). */
export class UnsupportedError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is UnsupportedError {
    return isDeftErrorWithCode(value, CODE);
  }
}
