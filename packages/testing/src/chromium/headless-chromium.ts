import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** The Chromium the browser tests drive: Debian's package, or `DEFT_CHROMIUM`. */
export const CHROMIUM = process.env.DEFT_CHROMIUM ?? '/usr/bin/chromium';

/** Flags that give headless Chromium a WebGPU adapter on a machine without a GPU (SwiftShader's Vulkan). */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
  '--use-vulkan=swiftshader',
];

async function loadPlaywright(): Promise<typeof import('playwright-core') | undefined> {
  try {
    return await import('playwright-core');
  } catch {
    return undefined;
  }
}

const playwright = await loadPlaywright();

/** Why the browser tests cannot run here (no Chromium, no playwright-core), or `undefined` when they can. */
export const chromiumSkipReason: string | undefined = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (install Debian's chromium: .ci/install-webgpu-driver.sh, or set DEFT_CHROMIUM)`
  : playwright === undefined
    ? 'playwright-core is not installed'
    : undefined;

/**
 * Starts headless Chromium with the WebGPU flags; the caller closes it.
 * @throws Error when {@link chromiumSkipReason} is set (check it first and skip).
 */
export async function launchChromium(): Promise<Browser> {
  if (playwright === undefined || chromiumSkipReason !== undefined) {
    throw new Error(`cannot start Chromium: ${chromiumSkipReason ?? 'playwright-core is not installed'}`);
  }
  return playwright.chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS] });
}
