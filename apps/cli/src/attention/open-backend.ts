import { type Backend, BackendError, UnsupportedError } from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';

/** Backends `deft attn` can run on. */
export const ATTENTION_BACKENDS = ['cpu', 'cuda', 'webgpu'] as const;
export type AttentionBackendName = (typeof ATTENTION_BACKENDS)[number];

/** An opened backend and what releases it (the backend, and the WebGPU device it runs on). */
export interface OpenedBackend {
  readonly backend: Backend;
  dispose(): void;
}

/**
 * Opens a backend by name: the CPU reference, CUDA (device 0 through the native addon) or WebGPU (a
 * device from the `webgpu` package in Node).
 *
 * @throws {UnsupportedError} with the reason when the backend cannot run here (no addon, no device, no adapter).
 * @example
 * ```ts
 * const { backend, dispose } = await openBackend('cpu');
 * ```
 */
export async function openBackend(name: AttentionBackendName): Promise<OpenedBackend> {
  if (name === 'cpu') {
    const backend = createCpuBackend();
    return { backend, dispose: () => backend.dispose() };
  }
  try {
    if (name === 'cuda') {
      const { createCudaBackend } = await import('@deft/kernels-cuda');
      const backend = createCudaBackend();
      return { backend, dispose: () => backend.dispose() };
    }
    const { createWebGpuBackend, requestWebGpuDevice } = await import('@deft/kernels-webgpu');
    const handle = await requestWebGpuDevice();
    try {
      const backend = createWebGpuBackend({ device: handle.device });
      return {
        backend,
        dispose: () => {
          backend.dispose();
          handle.dispose();
        },
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
