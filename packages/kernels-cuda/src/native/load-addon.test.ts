import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BackendError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import {
  addonCandidates,
  CUDA_ADDON_ENV,
  loadAddonFrom,
  loadCudaAddon,
  localAddonPath,
} from './load-addon.js';
import { toDeftError } from './native-error.js';

const localBuild = fileURLToPath(new URL('../../native/build/Release/deft_cuda.node', import.meta.url));
const built = existsSync(localBuild);
if (!built)
  console.info(
    `[kernels-cuda] addon tests skipped: no build at ${localBuild} (needs nvcc: pnpm --filter @deft/kernels-cuda build)`,
  );

describe.skipIf(!built)('the built addon', () => {
  it('loads and reports the driver without throwing', () => {
    const addon = loadCudaAddon();
    expect(addon.abiVersion).toBe(3);
    const probe = addon.probe();
    expect(probe.runtimeVersion).toBeGreaterThanOrEqual(12000);
    if (probe.deviceCount === 0) expect(probe.error).not.toBe(0);
  });

  it('rejects bad arguments at the N-API edge with a typed status instead of crashing', () => {
    const addon = loadCudaAddon();
    const attempts: (() => unknown)[] = [
      () => addon.allocate(123456, 16),
      () => (addon.allocate as (...args: unknown[]) => unknown)('context', 16),
      () => (addon.treeAttention as (...args: unknown[]) => unknown)(1, 2),
      () => (addon.writeKv as (...args: unknown[]) => unknown)(1, 0, [1, 2], 0, 0, 0),
      () => addon.createContext(-1),
      () =>
        addon.matmul(123456, Float64Array.of(123457), 1, Float64Array.of(123458), 4, 32, Int32Array.of(8)),
      () =>
        (addon.matmul as (...args: unknown[]) => unknown)(
          1,
          Float64Array.of(2, 3),
          1,
          Float64Array.of(4),
          4,
          32,
          Int32Array.of(8),
        ),
      () =>
        (addon.matmul as (...args: unknown[]) => unknown)(
          1,
          Float64Array.of(0.5),
          1,
          Float64Array.of(4),
          4,
          32,
          Int32Array.of(8),
        ),
      () => (addon.rope as (...args: unknown[]) => unknown)(1, [0, 1], 1, 4, 10000, 0, null),
      () => (addon.topK as (...args: unknown[]) => unknown)(1, 1, 4, 2, new Int32Array(1), null),
      () => (addon.elementwise as (...args: unknown[]) => unknown)(7, 1, 2, 3, 4),
    ];
    for (const attempt of attempts) {
      let caught: unknown;
      try {
        attempt();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(Error);
      expect(['invalid-argument', 'not-found', 'no-device']).toContain(
        (caught as { deftStatus: string }).deftStatus,
      );
    }
  });

  it('tries an explicit path first and falls back to the local build', () => {
    const addon = loadCudaAddon('/nonexistent/deft_cuda.node');
    expect(addon.abiVersion).toBe(3);
  });
});

describe('addon errors', () => {
  it('become typed DeFT errors', () => {
    const noDevice = Object.assign(new Error('cudaErrorInsufficientDriver (35)'), {
      deftStatus: 'no-device',
      cudaError: 35,
    });
    const converted = toDeftError(noDevice, 'createContext');
    expect(BackendError.isInstance(converted)).toBe(true);
    expect((converted as Error).message).toMatch(/no usable CUDA device or driver/);
    const plain = new Error('other');
    expect(toDeftError(plain, 'x')).toBe(plain);
  });
});

describe('the load error', () => {
  it("tries the argument, then this package's build, and no other path", () => {
    const saved = process.env[CUDA_ADDON_ENV];
    delete process.env[CUDA_ADDON_ENV];
    try {
      expect(addonCandidates('/nonexistent/deft_cuda.node').map((candidate) => candidate.path)).toEqual([
        '/nonexistent/deft_cuda.node',
        localBuild,
      ]);
    } finally {
      if (saved !== undefined) process.env[CUDA_ADDON_ENV] = saved;
    }
  });

  it('lists the paths it tried and says how a user rebuilds', () => {
    let caught: unknown;
    try {
      loadAddonFrom([{ path: '/nonexistent/deft_cuda.node', origin: 'argument' }]);
    } catch (error) {
      caught = error;
    }
    expect(BackendError.isInstance(caught)).toBe(true);
    const message = (caught as Error).message;
    expect([...message.matchAll(/^ {2}- (\S+) /gm)].map((match) => match[1])).toEqual([
      '/nonexistent/deft_cuda.node',
    ]);
    expect(message).toContain('npm rebuild @deft/kernels-cuda');
    expect(message).not.toContain('pnpm --filter');
  });
});

describe('localAddonPath', () => {
  it('finds the package root from the sources and from the bundled dist', () => {
    expect(localAddonPath()).toBe(localBuild);
    expect(localAddonPath(new URL('../../dist/index.js', import.meta.url).href)).toBe(localBuild);
    expect(localAddonPath('file:///nonexistent/deft/dist/index.js')).toBeUndefined();
  });
});
