import { DeftError, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_DISPOSED';

/** An object holding device memory was used after `dispose()`. */
export class DisposedError extends DeftError {
  constructor(what: string) {
    super(CODE, `${what} was used after dispose(); create a new one instead`, { argument: what });
  }

  static override isInstance(value: unknown): value is DisposedError {
    return isDeftErrorWithCode(value, CODE);
  }
}
