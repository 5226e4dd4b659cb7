/// <reference types="@webgpu/types" />
import type { DeviceTensor, KVStorage } from '@deft/core';
import type { WebGpuKVStorage } from '../backend/webgpu-kv-storage.js';
import type { WebGpuTensor } from '../backend/webgpu-tensor.js';

/** Something the model ops allocate on the device outside the backend's tensors (a quantized weight). */
export interface OpsResource {
  dispose(): void;
}

/** What the WebGPU model ops need from the backend that owns them. */
export interface ModelOpsContext {
  readonly device: GPUDevice;
  readonly maxWorkgroupsPerDimension: number;
  /** Throws `DisposedError` / `BackendError` when the backend or its device is gone. */
  assertUsable(): void;
  /** Runs device calls, turning their validation errors into `BackendError` (reported later). */
  scoped<T>(what: string, work: () => T): T;
  /** The compute pipeline for `key`, compiled from `source()` once. */
  pipeline(key: string, source: () => string): GPUComputePipeline;
  /** The backend's own tensor; throws `InvalidArgumentError` for a foreign one, `DisposedError` for a disposed one. */
  tensor(argument: string, tensor: DeviceTensor): WebGpuTensor;
  /**
   * The backend's set of resources the ops created: `backend.dispose()` disposes every one still in it,
   * as it disposes its tensors. The ops add a resource when they create it; the resource deletes itself
   * when it is disposed first.
   */
  readonly resources: Pick<Set<OpsResource>, 'add' | 'delete'>;
  /** The backend's own KV store; throws like {@link tensor}. */
  storage(argument: string, storage: KVStorage): WebGpuKVStorage;
  /** Copies `bytes` from the start of `buffer` to the host once the queued work is done. */
  read(buffer: GPUBuffer, bytes: number, what: string): Promise<ArrayBuffer>;
}
