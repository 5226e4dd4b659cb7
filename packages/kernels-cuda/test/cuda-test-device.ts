import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCudaAddon } from '../src/native/load-addon.js';

const localBuild = fileURLToPath(new URL('../native/build/Release/deft_cuda.node', import.meta.url));
const addonPath = process.env.DEFT_CUDA_ADDON || localBuild;
const probe = existsSync(addonPath) ? loadCudaAddon().probe() : undefined;

/**
 * Why this machine cannot run the CUDA GPU tests (no addon build, no device or driver), or `''` when it can.
 * GPU test files skip with it and print it once.
 */
export const cudaTestSkipReason =
  probe === undefined
    ? `no CUDA addon at ${addonPath} (build it with pnpm --filter @deft/kernels-cuda build)`
    : probe.deviceCount === 0
      ? `no CUDA device: ${probe.errorName} (${probe.error})`
      : '';
