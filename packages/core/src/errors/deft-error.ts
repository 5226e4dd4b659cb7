const DEFT_ERROR_MARKER = Symbol.for('@deft/core/error');

/** Structured details every DeFT error may carry. */
export interface DeftErrorDetails {
  /** The argument or field that was wrong, e.g. `"node"` or `"workload.nodes[3].parent"`. */
  readonly argument?: string;
  /** What was expected, in words or as a value. */
  readonly expected?: unknown;
  /** What was received. */
  readonly actual?: unknown;
  /** The underlying error, if any. */
  readonly cause?: unknown;
}

/**
 * Base class of every error thrown by a `@deft/*` package.
 *
 * Errors are recognisable across duplicate installs of the package through a `Symbol.for` marker:
 * use {@link DeftError.isInstance} (or the subclass's `isInstance`) rather than `instanceof`.
 *
 * @example
 * ```ts
 * try { tree.prune(root); } catch (error) {
 *   if (DeftError.isInstance(error)) console.error(error.code, error.message);
 * }
 * ```
 */
export class DeftError extends Error {
  /** Stable machine-readable code, e.g. `"DEFT_INVALID_ARGUMENT"`. */
  readonly code: string;
  readonly argument: string | undefined;
  readonly expected: unknown;
  readonly actual: unknown;
  /** Marks DeFT errors across duplicate installs (see {@link DeftError.isInstance}). */
  readonly [DEFT_ERROR_MARKER] = true;

  constructor(code: string, message: string, details: DeftErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.argument = details.argument;
    this.expected = details.expected;
    this.actual = details.actual;
  }

  /** True for any DeFT error, even one created by another copy of `@deft/core`. */
  static isInstance(value: unknown): value is DeftError {
    return typeof value === 'object' && value !== null && DEFT_ERROR_MARKER in value;
  }
}

/**
 * True if `value` is a DeFT error (from any copy of `@deft/core`) with this `code`: what each subclass's
 * `isInstance` checks.
 */
export function isDeftErrorWithCode(value: unknown, code: string): value is DeftError {
  return DeftError.isInstance(value) && value.code === code;
}
