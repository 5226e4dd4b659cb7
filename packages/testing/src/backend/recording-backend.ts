import type { Backend } from '@deft/core';

/** One call recorded by {@link createRecordingBackend}. */
export interface RecordedCall {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** A backend that forwards to another and records every call, for tests of code written against the contract. */
export interface RecordingBackend extends Backend {
  /** Calls so far, oldest first. */
  readonly calls: readonly RecordedCall[];
  /** Forgets the recorded calls. */
  clearCalls(): void;
}

const RECORDED_METHODS = [
  'createTensor',
  'uploadTensor',
  'downloadTensor',
  'createKVStorage',
  'writeKV',
  'readKV',
  'copyPages',
  'preparePlan',
  'treeAttention',
  'synchronize',
  'dispose',
] as const;

/**
 * Wraps `inner` so every contract call is recorded (method name and arguments) before it is forwarded.
 *
 * @example
 * ```ts
 * const backend = createRecordingBackend(createCpuBackend());
 * runStep(backend);
 * expect(backend.calls.filter((call) => call.method === 'preparePlan')).toHaveLength(1);
 * ```
 */
export function createRecordingBackend(inner: Backend): RecordingBackend {
  const calls: RecordedCall[] = [];
  const recording: Record<string, unknown> = {
    contractVersion: inner.contractVersion,
    name: inner.name,
    capabilities: inner.capabilities,
    calls,
    clearCalls: () => {
      calls.length = 0;
    },
  };
  Object.defineProperty(recording, 'disposed', { get: () => inner.disposed, enumerable: true });
  for (const method of RECORDED_METHODS) {
    recording[method] = (...args: unknown[]) => {
      calls.push({ method, args });
      return (inner[method] as (...forwarded: unknown[]) => unknown).apply(inner, args);
    };
  }
  return recording as unknown as RecordingBackend;
}
