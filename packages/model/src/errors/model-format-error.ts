import { DeftError, type DeftErrorDetails, isDeftErrorWithCode } from '@deft/core';

const CODE = 'DEFT_MODEL_FORMAT';

/**
 * A model or tokenizer file is malformed: truncated, a wrong magic number, inconsistent shapes or
 * metadata. `argument` names the file (or the field), `expected` / `actual` say what was wrong.
 * Nothing was loaded. Missing files throw `NotFoundError`, unsupported tensor types or architectures
 * `UnsupportedError` (both from `@deft/core`).
 *
 * @example
 * ```ts
 * try { await loadLlama2cCheckpoint(path); } catch (error) {
 *   if (ModelFormatError.isInstance(error)) console.error(`re-export ${error.argument}: ${error.message}`);
 * }
 * ```
 */
export class ModelFormatError extends DeftError {
  constructor(message: string, details: DeftErrorDetails = {}) {
    super(CODE, message, details);
  }

  static override isInstance(value: unknown): value is ModelFormatError {
    return isDeftErrorWithCode(value, CODE);
  }
}
