import type { GpuBackendName, GpuBenchOptions, GpuBenchOutcome } from './gpu-bench-types.js';

export type { GpuBackendName, GpuBenchOptions, GpuBenchOutcome } from './gpu-bench-types.js';

/** A loaded GPU bench, or why it cannot run here. */
export type GpuBenchLoad =
  | { readonly available: true; readonly run: (options: GpuBenchOptions) => Promise<GpuBenchOutcome> }
  | { readonly available: false; readonly reason: string };

type GpuBenchEntry = (options: GpuBenchOptions) => Promise<GpuBenchOutcome>;

/** How each GPU bench module is imported: literal specifiers, so a bundler follows them. */
const LOADERS: Record<
  GpuBackendName,
  { readonly exportName: string; readonly load: () => Promise<Record<string, unknown>> }
> = {
  cuda: {
    exportName: 'runCudaBench',
    load: async () => (await import('../gpu/cuda-bench.js')) as Record<string, unknown>,
  },
  webgpu: {
    exportName: 'runWebGpuBench',
    load: async () => (await import('../gpu/webgpu-bench.js')) as Record<string, unknown>,
  },
};

/**
 * Loads the bench module of a GPU backend (`src/gpu/`). A module that is missing, fails to load (its
 * native addon or GPU package absent) or does not export its entry point is reported as unavailable
 * with the reason, never thrown.
 */
export async function loadGpuBench(backend: GpuBackendName): Promise<GpuBenchLoad> {
  const { exportName, load } = LOADERS[backend];
  let module: Record<string, unknown>;
  try {
    module = await load();
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    return { available: false, reason: `its bench module could not be loaded (${message})` };
  }
  const run = module[exportName];
  if (typeof run !== 'function')
    return { available: false, reason: `its bench module has no ${exportName}()` };
  return { available: true, run: run as GpuBenchEntry };
}
