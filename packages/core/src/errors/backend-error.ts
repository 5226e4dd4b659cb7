import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from './deft-error.js';

const CODE = 'DEFT_BACKEND';

/** A device reported a failure (CUDA error, WebGPU validation error, device loss, missing addon). */
export class BackendError extends DeftError {
  /** The backend's name, e.g. `"cuda"` or `"webgpu"`. */
  readonly backend: string;

  constructor(backend: string, message: string, details: DeftErrorDetails = {}) {
    super(CODE, `[${backend}] ${message}`, details);
    this.backend = backend;
  }

  static override isInstance(value: unknown): value is BackendError {
    return isDeftErrorWithCode(value, CODE);
  }
}
