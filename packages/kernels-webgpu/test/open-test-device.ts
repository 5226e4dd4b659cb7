import { existsSync } from 'node:fs';
import {
  type RequestWebGpuDeviceOptions,
  requestWebGpuDevice,
  type WebGpuDeviceHandle,
} from '../src/device/request-device.js';

/** CPU Vulkan drivers the tests look for when the default driver search finds no adapter. */
export const KNOWN_CPU_VULKAN_DRIVERS: readonly string[] = [
  '/usr/share/vulkan/icd.d/lvp_icd.json',
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
  '/usr/local/share/vulkan/icd.d/lvp_icd.json',
  '/usr/lib/chromium/vk_swiftshader_icd.json',
];

/** A device for the GPU tests, or the reason there is none. */
export type TestDevice =
  | { readonly handle: WebGpuDeviceHandle; readonly driver: string; readonly skipReason?: undefined }
  | { readonly handle?: undefined; readonly driver?: undefined; readonly skipReason: string };

function setDriver(path: string): void {
  process.env.VK_DRIVER_FILES = path;
  process.env.VK_ICD_FILENAMES = path;
}

/**
 * Opens a WebGPU device for tests in Node: first with the environment as it is (a GPU, or the driver
 * named by `VK_DRIVER_FILES` / `VK_ICD_FILENAMES`), then with each known CPU Vulkan driver that is
 * installed (Mesa lavapipe, Chromium's SwiftShader). Never throws: returns a skip reason instead.
 */
export async function openTestDevice(options: RequestWebGpuDeviceOptions = {}): Promise<TestDevice> {
  const explicit = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  const attempts: (string | undefined)[] = [undefined];
  if (explicit === undefined) attempts.push(...KNOWN_CPU_VULKAN_DRIVERS.filter((path) => existsSync(path)));
  const failures: string[] = [];
  for (const driver of attempts) {
    if (driver !== undefined) setDriver(driver);
    try {
      const handle = await requestWebGpuDevice(options);
      return { handle, driver: driver ?? explicit ?? 'the default Vulkan driver search' };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message.includes('`webgpu` package'))
        return { skipReason: `the webgpu package (Dawn) is not installed: ${message}` };
      failures.push(`${driver ?? explicit ?? 'default'}: ${message}`);
    }
  }
  if (explicit === undefined && attempts.length === 1) {
    failures.push('no CPU Vulkan driver installed (run .ci/install-webgpu-driver.sh as root)');
  }
  return { skipReason: `no WebGPU adapter (${failures.join('; ')})` };
}
