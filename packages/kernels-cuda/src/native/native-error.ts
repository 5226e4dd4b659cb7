import { BackendError, InvalidArgumentError } from '@deft/core';

/** Shape of the errors the addon throws (see native/src/addon.cc). */
interface AddonError extends Error {
  readonly deftStatus?: string;
  readonly cudaError?: number;
}

/**
 * Converts an error thrown by the addon into a typed DeFT error: `invalid-argument` becomes an
 * `InvalidArgumentError`, everything else a `BackendError` (with the CUDA error number and name).
 * Anything that is not an addon error is returned unchanged.
 */
export function toDeftError(error: unknown, operation: string): unknown {
  if (!(error instanceof Error) || !('deftStatus' in error)) return error;
  const addonError = error as AddonError;
  if (addonError.deftStatus === 'invalid-argument') {
    return new InvalidArgumentError(`${operation}: ${addonError.message}`, {
      argument: operation,
      cause: error,
    });
  }
  if (addonError.deftStatus === 'no-device') {
    return new BackendError(
      'cuda',
      `${operation}: no usable CUDA device or driver (${addonError.message}). ` +
        'Run on a machine with an NVIDIA GPU and driver, or use the cpu or webgpu backend.',
      { argument: operation, actual: addonError.cudaError, cause: error },
    );
  }
  return new BackendError('cuda', `${operation}: ${addonError.message}`, {
    argument: operation,
    actual: addonError.cudaError,
    cause: error,
  });
}

/** Runs an addon call, rethrowing its failure as a typed DeFT error. */
export function callNative<T>(operation: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw toDeftError(error, operation);
  }
}
