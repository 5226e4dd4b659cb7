import { DeftError, isDeftErrorWithCode } from '@deft/core';

const CODE = 'DEFT_CLI_API';

/** The `type` of an OpenAI-style error object. */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'server_overloaded'
  | 'server_error';

/** What an {@link ApiError} carries besides its message. */
export interface ApiErrorDetails {
  /** HTTP status: 400, 401, 404, 405, 413, 503, 500. */
  readonly status: number;
  readonly type: ApiErrorType;
  /** The request field at fault (`max_tokens`, `messages[1].role`), or `null`. */
  readonly param?: string | null;
  /** A short machine-readable code (`invalid_value`, `context_length_exceeded`, …), or `null`. */
  readonly errorCode?: string | null;
  /** Seconds after which a retry may succeed (sent as `Retry-After`), for 503. */
  readonly retryAfterSeconds?: number;
  readonly cause?: unknown;
}

/**
 * A request `deft serve` refuses, with the HTTP status and the OpenAI error object it answers with:
 * `{ "error": { "message", "type", "param", "code" } }`. The message says what to change.
 *
 * @example
 * ```ts
 * throw new ApiError('max_tokens must be an integer >= 1, got 0', { status: 400, type: 'invalid_request_error', param: 'max_tokens' });
 * ```
 */
export class ApiError extends DeftError {
  readonly status: number;
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly errorCode: string | null;
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, details: ApiErrorDetails) {
    super(CODE, message, {
      ...(details.param == null ? {} : { argument: details.param }),
      ...(details.cause === undefined ? {} : { cause: details.cause }),
    });
    this.status = details.status;
    this.type = details.type;
    this.param = details.param ?? null;
    this.errorCode = details.errorCode ?? null;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }

  static override isInstance(value: unknown): value is ApiError {
    return isDeftErrorWithCode(value, CODE);
  }

  /** The body of the error response. */
  toBody(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.errorCode } };
  }
}

/** A 400 naming the field at fault. */
export function invalidField(param: string, message: string, errorCode = 'invalid_value'): ApiError {
  return new ApiError(message, { status: 400, type: 'invalid_request_error', param, errorCode });
}
