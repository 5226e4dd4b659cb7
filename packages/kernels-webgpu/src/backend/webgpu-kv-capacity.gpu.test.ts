import { CapacityError, InvalidArgumentError } from '@deft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { createWebGpuBackend } from './webgpu-backend.js';

const testDevice = await openTestDevice();
if (testDevice.handle === undefined)
  console.warn(`WebGPU KV capacity tests skipped: ${testDevice.skipReason}`);

describe.skipIf(testDevice.handle === undefined)('WebGPU KV storage against the device', () => {
  const device = testDevice.handle!.device;
  afterAll(() => testDevice.handle?.dispose());

  it("refuses a layer above the device's binding limit before creating buffers", async () => {
    const backend = createWebGpuBackend({ device });
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const pageBytes = 16 * 8 * 128 * 2;
    const numPages = Math.floor(limit / pageBytes) + 1;
    const descriptor = {
      numLayers: 2,
      numPages,
      pageSize: 16,
      numKvHeads: 8,
      headDim: 128,
      dtype: 'f16',
    } as const;
    expect(() => backend.createKVStorage(descriptor)).toThrow(CapacityError);
    expect(() => backend.createKVStorage(descriptor)).toThrow(
      `of ${limit} bytes; use at most ${numPages - 1} pages`,
    );
    // Nothing was created, so nothing failed on the device either.
    await backend.synchronize();
    backend.dispose();
  });

  it('refuses storage above deviceMemoryBudgetBytes, and takes what fits', async () => {
    const descriptor = {
      numLayers: 4,
      numPages: 8,
      pageSize: 16,
      numKvHeads: 2,
      headDim: 64,
      dtype: 'f32',
    } as const;
    const bytes = 2 * 4 * 8 * 16 * 2 * 64 * 4;
    const tight = createWebGpuBackend({ device, deviceMemoryBudgetBytes: bytes - 1 });
    expect(() => tight.createKVStorage(descriptor)).toThrow(
      `need ${bytes} bytes, above the device-memory budget of ${bytes - 1} bytes`,
    );
    await tight.synchronize();
    tight.dispose();
    const fits = createWebGpuBackend({ device, deviceMemoryBudgetBytes: bytes });
    fits.createKVStorage(descriptor).dispose();
    await fits.synchronize();
    fits.dispose();
    expect(() => createWebGpuBackend({ device, deviceMemoryBudgetBytes: 0 })).toThrow(InvalidArgumentError);
  });
});
