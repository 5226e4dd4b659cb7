import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromiumSkipReason, launchChromium } from '@deft/testing/chromium';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserCheckReport } from '../../test/browser-check-entry.js';

const skipReason = chromiumSkipReason;
if (skipReason !== undefined) console.warn(`WebGPU browser test skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('WebGPU kernels in headless Chromium', () => {
  let server: Server;
  let url = '';

  beforeAll(async () => {
    const { build } = await import('esbuild');
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL('../../test/browser-check-entry.ts', import.meta.url))],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      conditions: ['source'],
      write: false,
      logLevel: 'error',
    });
    const script = bundle.outputFiles[0]!.text;
    const page =
      '<!doctype html><meta charset="utf-8"><title>DeFT WebGPU check</title><script type="module" src="/check.js"></script>';
    server = createServer((request, response) => {
      const isScript = request.url === '/check.js';
      response.writeHead(200, { 'content-type': isScript ? 'text/javascript' : 'text/html' });
      response.end(isScript ? script : page);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  it('runs every strategy in the page and matches the float64 reference', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(url);
      // Wait for the script however long a busy machine takes, but fail at once if it throws.
      await Promise.race([
        page.waitForFunction(() => 'runDeftCheck' in globalThis, undefined, { timeout: 0 }),
        new Promise((_, reject) => page.once('pageerror', reject)),
      ]);
      const hasGpu = await page.evaluate(async () => {
        const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
        return gpu !== undefined && (await gpu.requestAdapter()) !== null;
      });
      if (!hasGpu) {
        console.warn('WebGPU browser test: Chromium started but offered no WebGPU adapter with these flags');
      }
      expect(hasGpu, 'navigator.gpu adapter in headless Chromium').toBe(true);
      const report = (await page.evaluate(
        (seeds) =>
          (globalThis as unknown as { runDeftCheck(seeds: number[]): Promise<unknown> }).runDeftCheck(seeds),
        [0, 2, 3],
      )) as BrowserCheckReport;
      console.info(`WebGPU browser test on ${report.adapter}`);
      expect(errors).toEqual([]);
      expect(report.cases.length).toBe(6);
      for (const testCase of report.cases) {
        const tolerance = testCase.kvDtype === 'f16' ? 2e-3 : 1e-5;
        for (const result of testCase.results) {
          expect(
            result.relativeError,
            `${testCase.description} ${testCase.kvDtype} ${result.strategy}`,
          ).toBeLessThan(tolerance);
        }
      }
    } finally {
      await browser.close();
    }
  });
});
