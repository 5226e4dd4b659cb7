import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BackendError } from '@deft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddonFrom, recordedInstallReason } from './load-addon.js';

const LINE =
  'installed without the CUDA addon: nvcc not found (looked in PATH); install the CUDA toolkit (nvcc on PATH, or set CUDA_PATH), then run `npm rebuild @deft/kernels-cuda` (or reinstall the package)';

/** A package directory whose build is missing, with or without the install script's recorded reason. */
function installedPackage(reason: string | undefined): string {
  const root = mkdtempSync(path.join(tmpdir(), 'deft-install-reason-'));
  mkdirSync(path.join(root, 'native', 'build'), { recursive: true });
  if (reason !== undefined)
    writeFileSync(path.join(root, 'native', 'build', 'install-reason.txt'), `${reason}\n`);
  return path.join(root, 'native', 'build', 'Release', 'deft_cuda.node');
}

function loadError(addonPath: string): Error {
  try {
    loadAddonFrom([{ path: addonPath, origin: "this package's build" }]);
  } catch (error) {
    expect(BackendError.isInstance(error)).toBe(true);
    return error as Error;
  }
  throw new Error('expected a BackendError');
}

describe('the reason recorded at install', () => {
  const made: string[] = [];
  afterAll(() => {
    for (const addonPath of made)
      rmSync(path.resolve(addonPath, '..', '..', '..', '..'), { recursive: true });
  });

  it('is quoted by the load error when the build is missing', () => {
    const addonPath = installedPackage(LINE);
    made.push(addonPath);
    expect(recordedInstallReason(addonPath)).toBe(LINE);
    const message = loadError(addonPath).message;
    expect(message).toContain(`${addonPath} (this package's build): not found`);
    expect(message).toContain(`When the package was installed: ${LINE}\n`);
    expect(message).toContain('npm rebuild @deft/kernels-cuda');
  });

  it('is left out when the install script recorded nothing', () => {
    const addonPath = installedPackage(undefined);
    made.push(addonPath);
    expect(recordedInstallReason(addonPath)).toBeUndefined();
    expect(recordedInstallReason(undefined)).toBeUndefined();
    expect(loadError(addonPath).message).not.toContain('When the package was installed');
  });
});
