/// <reference types="@webgpu/types" />
import type { Shape } from '@deft/core';

/**
 * What a tensor-like object of the WebGPU backend shares, whatever its buffer holds (dense values or
 * GGUF blocks): the one `GPUBuffer` it owns, the backend or model ops that made it, and an idempotent
 * lifecycle. `dispose()` destroys the buffer and tells the holder once; a second call does nothing.
 */
export abstract class WebGpuBufferResource {
  readonly backend = 'webgpu';
  private isDisposed = false;

  protected constructor(
    /** The backend (or model ops) that created it. */
    readonly owner: object,
    readonly shape: Shape,
    readonly buffer: GPUBuffer,
    /** Called once, when it is disposed (the holder stops tracking it). */
    private readonly onDispose: () => void,
  ) {}

  get disposed(): boolean {
    return this.isDisposed;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.buffer.destroy();
    this.onDispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
