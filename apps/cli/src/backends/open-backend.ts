import { type Backend, BackendError, UnsupportedError } from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import type { CudaBackendOptions } from '@deft/kernels-cuda';
import type { WebGpuBackendOptions } from '@deft/kernels-webgpu';
import { hostMemoryBudget } from '../workloads/workload-memory.js';

/** Backends the CLI can open by name. */
export const BACKEND_NAMES = ['cpu', 'cuda', 'webgpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** Per-backend settings for {@link openBackend}; each applies only when that backend is opened. */
export interface OpenBackendOptions {
  readonly cuda?: CudaBackendOptions;
  readonly webgpu?: {
    /** Dawn toggles for the device (Node only), e.g. full-precision timestamps. */
    readonly dawnOptions?: readonly string[];
    /** Backend settings other than the device. */
    readonly backend?: Omit<WebGpuBackendOptions, 'device'>;
  };
}

/** An opened backend, a description of the device it runs on, and what releases both. */
export interface OpenedBackend {
  readonly backend: Backend;
  readonly description: string;
  /** Releases the backend and, for WebGPU, destroys the device opened for it (idempotent). */
  dispose(): void;
}

/**
 * The one place the CLI turns a backend name into a backend: the CPU reference, CUDA (through the
 * native addon) or WebGPU (a device from the `webgpu` package in Node, destroyed by `dispose()`).
 * Callers release it in a `finally`, so every exit path frees the device.
 *
 * @throws {UnsupportedError} with the reason when the backend cannot run here (no addon, no device, no adapter).
 * @example
 * ```ts
 * const opened = await openBackend('cpu');
 * try {
 *   // ... opened.backend ...
 * } finally {
 *   opened.dispose();
 * }
 * ```
 */
export async function openBackend(
  name: BackendName,
  options: OpenBackendOptions = {},
): Promise<OpenedBackend> {
  if (name === 'cpu') {
    // The same host-memory budget the commands check workloads against (DEFT_HOST_MEMORY_BUDGET).
    const backend = createCpuBackend({ hostMemoryBudgetBytes: hostMemoryBudget() });
    return { backend, description: 'CPU reference', dispose: once(() => backend.dispose()) };
  }
  try {
    if (name === 'cuda') {
      const { createCudaBackend } = await import('@deft/kernels-cuda');
      const backend = createCudaBackend(options.cuda);
      return { backend, description: backend.capabilities.device, dispose: once(() => backend.dispose()) };
    }
    const { createWebGpuBackend, requestWebGpuDevice } = await import('@deft/kernels-webgpu');
    const handle = await requestWebGpuDevice(
      options.webgpu?.dawnOptions === undefined ? {} : { dawnOptions: options.webgpu.dawnOptions },
    );
    try {
      const backend = createWebGpuBackend({ ...options.webgpu?.backend, device: handle.device });
      return {
        backend,
        description: handle.description,
        dispose: once(() => {
          try {
            backend.dispose();
          } finally {
            handle.dispose();
          }
        }),
      };
    } catch (error) {
      handle.dispose();
      throw error;
    }
  } catch (error) {
    if (UnsupportedError.isInstance(error)) throw error;
    if (BackendError.isInstance(error) || isModuleError(error)) {
      throw new UnsupportedError(
        `the ${name} backend is unavailable: ${(error as Error).message.split('\n')[0]}`,
        {
          argument: 'backend',
          cause: error,
        },
      );
    }
    throw error;
  }
}

function once(release: () => void): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    release();
  };
}

/**
 * Describes the WebGPU adapter this machine offers without keeping a device: `undefined` when there is
 * none, else its description and whether it is a software renderer (llvmpipe, SwiftShader), which
 * `deft bench --backend auto` does not count as a GPU.
 */
export async function probeWebGpuAdapter(): Promise<
  { readonly description: string; readonly software: boolean } | undefined
> {
  try {
    const { requestWebGpuDevice } = await import('@deft/kernels-webgpu');
    const handle = await requestWebGpuDevice();
    try {
      const info = handle.adapter.info;
      const software =
        (handle.adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
        info.architecture === 'software' ||
        /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.device} ${info.description}`);
      return { description: handle.description, software };
    } finally {
      handle.dispose();
    }
  } catch {
    return undefined;
  }
}

function isModuleError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_DLOPEN_FAILED' || code === 'MODULE_NOT_FOUND';
}
