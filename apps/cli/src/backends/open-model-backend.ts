import { isModelBackend, type ModelBackend, UnsupportedError } from '@deft/core';
import { UsageError } from '../errors/usage-error.js';
import { type BackendName, type OpenedBackend, openBackend, probeWebGpuAdapter } from './open-backend.js';

/**
 * Opens a backend that runs models (one with model ops) for `deft generate` and `deft serve`.
 *
 * A named backend is opened through {@link openBackend} and refused when it has no model ops. `auto`
 * tries CUDA, then a hardware WebGPU adapter (a software renderer such as llvmpipe is skipped), each
 * only if it opens here and implements the model ops, and falls back to the CPU reference. The caller
 * releases `opened` in a `finally`; `backend` is `opened.backend` typed as a {@link ModelBackend}.
 *
 * @param name A backend the CLI can open, or `auto`.
 * @throws {UsageError} when the named backend does not implement the model ops (`argument: '--backend'`).
 * @throws {UnsupportedError} with the reason when the named backend cannot run here (no addon, no device,
 *   no adapter); `auto` never throws it.
 * @example
 * ```ts
 * const { opened, backend } = await openModelBackend('auto');
 * try {
 *   const model = LlamaModel.create(backend, checkpoint);
 *   // ...
 * } finally {
 *   opened.dispose();
 * }
 * ```
 */
export async function openModelBackend(
  name: BackendName | 'auto',
): Promise<{ opened: OpenedBackend; backend: ModelBackend }> {
  if (name !== 'auto') return openNamed(name);
  for (const candidate of ['cuda', 'webgpu'] as const) {
    if (candidate === 'webgpu') {
      const adapter = await probeWebGpuAdapter();
      if (adapter === undefined || adapter.software) continue;
    }
    try {
      const opened = await openBackend(candidate);
      if (isModelBackend(opened.backend)) return { opened, backend: opened.backend };
      opened.dispose();
    } catch (error) {
      if (!UnsupportedError.isInstance(error)) throw error;
    }
  }
  return openNamed('cpu');
}

/** Opens the named backend and checks that it has model ops, releasing it when it has not. */
async function openNamed(name: BackendName): Promise<{ opened: OpenedBackend; backend: ModelBackend }> {
  const opened = await openBackend(name);
  if (!isModelBackend(opened.backend)) {
    opened.dispose();
    throw new UsageError(
      `the ${name} backend runs tree attention but does not implement the model ops; use another --backend`,
      { argument: '--backend', expected: 'a backend with model ops', actual: name },
    );
  }
  return { opened, backend: opened.backend };
}
