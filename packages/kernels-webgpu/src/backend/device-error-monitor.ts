/// <reference types="@webgpu/types" />
import { BackendError } from '@deft/core';

interface ScopedError {
  readonly error: GPUError;
  readonly what: string;
}

function tagged(scope: Promise<GPUError | null>, what: string): Promise<ScopedError | null> {
  return scope.then((error) => (error === null ? null : { error, what }));
}

/**
 * Watches a device for the errors WebGPU reports asynchronously and turns them into `BackendError`s:
 * device loss (sticky: every later call throws), errors caught by the error scopes the backend pushes
 * around its own commands, and uncaptured errors (those outside any scope).
 */
export class DeviceErrorMonitor {
  private lostMessage: string | undefined;
  private readonly pending: Promise<ScopedError | null>[] = [];
  private readonly uncaptured: GPUError[] = [];
  private readonly onUncaptured = (event: Event): void => {
    const error = (event as GPUUncapturedErrorEvent).error;
    if (error !== undefined) this.uncaptured.push(error);
  };
  private listening = false;

  constructor(
    private readonly device: GPUDevice,
    private readonly backendName: string,
  ) {
    device.lost.then(
      (info) => {
        this.lostMessage = `the GPU device was lost (${info.reason}${info.message ? `: ${info.message.trim()}` : ''})`;
      },
      () => undefined,
    );
    if (typeof device.addEventListener === 'function') {
      device.addEventListener('uncapturederror', this.onUncaptured);
      this.listening = true;
    }
  }

  /** True once the device is lost. */
  get lost(): boolean {
    return this.lostMessage !== undefined;
  }

  /** Throws `BackendError` if the device was lost. */
  assertAlive(): void {
    if (this.lostMessage !== undefined) {
      throw new BackendError(this.backendName, `${this.lostMessage}; create a new device and backend`, {
        argument: 'device',
      });
    }
  }

  /**
   * Runs `work` inside validation and out-of-memory error scopes; the scopes' results are checked by
   * {@link flush}. Exceptions thrown synchronously by `work` (e.g. a detached buffer) become `BackendError`.
   */
  scoped<T>(what: string, work: () => T): T {
    this.assertAlive();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T;
    try {
      result = work();
    } catch (error) {
      this.pending.push(tagged(this.device.popErrorScope(), what), tagged(this.device.popErrorScope(), what));
      throw new BackendError(this.backendName, `${what} failed: ${String(error)}`, { cause: error });
    }
    const validation = tagged(this.device.popErrorScope(), what);
    const memory = tagged(this.device.popErrorScope(), what);
    this.pending.push(validation, memory);
    return result;
  }

  /** Awaits every scope popped so far and throws the first error seen (then forgets them all). */
  async flush(): Promise<void> {
    const pending = this.pending.splice(0, this.pending.length);
    const results = await Promise.allSettled(pending);
    const errors: { message: string; what?: string; kind: string }[] = [];
    for (const result of results) {
      if (result.status === 'fulfilled' && result.value !== null) {
        const { error, what } = result.value;
        errors.push({ message: error.message, kind: error.constructor?.name ?? 'GPUError', what });
      }
    }
    for (const error of this.uncaptured.splice(0, this.uncaptured.length)) {
      errors.push({ message: error.message, kind: error.constructor?.name ?? 'GPUError' });
    }
    this.assertAlive();
    const first = errors[0];
    if (first !== undefined) {
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
      throw new BackendError(
        this.backendName,
        `${first.what ?? 'a WebGPU command'} raised ${first.kind}: ${first.message.trim()}${more}`,
        { actual: errors.map((error) => error.message) },
      );
    }
  }

  /** Stops listening to the device. */
  detach(): void {
    if (this.listening) this.device.removeEventListener('uncapturederror', this.onUncaptured);
    this.listening = false;
  }
}
