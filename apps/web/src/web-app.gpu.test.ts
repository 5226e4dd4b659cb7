import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beamSearch, DecodingEngine, runStrategy } from '@deft/decoder';
import { hasStories260K, loadStories260K, stories260KDirectory, stories260KSkipReason } from '@deft/testing';
import { chromiumSkipReason, launchChromium } from '@deft/testing/chromium';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const appRoot = fileURLToPath(new URL('..', import.meta.url));
/** The screenshot the README shows; rewritten when DEFT_UPDATE_SCREENSHOT=1, else saved to a temporary folder. */
const readmeScreenshot = path.join(appRoot, 'docs', 'beam-search.png');

const skipReason = chromiumSkipReason ?? (hasStories260K ? undefined : stories260KSkipReason);
if (skipReason !== undefined) console.warn(`apps/web browser test skipped: ${skipReason}`);

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.png': 'image/png',
};

/** Serves the built app at `/` and the stories260K folder at `/models/` on 127.0.0.1. */
function serve(appDirectory: string): Server {
  return createServer(async (request, response) => {
    const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
    const file = pathname.startsWith('/models/')
      ? path.join(stories260KDirectory, path.basename(pathname))
      : path.join(appDirectory, pathname === '/' ? 'index.html' : path.normalize(pathname));
    try {
      const body = await readFile(file);
      response.writeHead(200, {
        'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
}

/** What the page put in `<output id="result">`, and the kept-sequence dots of the tree view. */
interface PageResult {
  readonly status: string;
  readonly text: string;
  readonly tokens: number[];
  readonly sequences: number[][];
  readonly keptDots: number;
  readonly prunedNodes: number;
}

/**
 * How long a load and run may take on a slow CPU WebGPU driver. The page reports an error in the worker
 * (`data-status="error"`), and this bound turns any other hang into a failure well before vitest's timeout.
 */
const RUN_TIMEOUT_MS = 180_000;

/** Opens the page with the URL test hooks and waits for the run to end, failing at once on a page error. */
async function runInPage(page: Page, url: string): Promise<PageResult> {
  await page.goto(url);
  await Promise.race([
    page.waitForFunction(
      () => ['done', 'error'].includes(document.getElementById('result')?.dataset.status ?? ''),
      undefined,
      { timeout: RUN_TIMEOUT_MS },
    ),
    new Promise((_, reject) => page.once('pageerror', reject)),
  ]);
  return page.evaluate(() => {
    const output = document.getElementById('result') as HTMLOutputElement;
    return {
      status: output.dataset.status ?? '',
      text: output.textContent ?? '',
      tokens: JSON.parse(output.dataset.tokens ?? '[]') as number[],
      sequences: JSON.parse(output.dataset.sequences ?? '[]') as number[][],
      keptDots: document.querySelectorAll('#tree circle[data-kept]').length,
      prunedNodes: document.querySelectorAll('#tree [data-state="pruned"]').length,
    };
  });
}

describe.skipIf(skipReason !== undefined)('apps/web in headless Chromium on WebGPU', () => {
  let outDir = '';
  let server: Server;
  let origin = '';
  let browser: Browser;
  let noAdapterReason: string | undefined;

  beforeAll(async () => {
    // Built here, into a folder of its own, so the test never runs a stale build.
    outDir = mkdtempSync(path.join(tmpdir(), 'deft-web-'));
    const { build } = await import('vite');
    await build({
      root: appRoot,
      configFile: path.join(appRoot, 'vite.config.ts'),
      logLevel: 'error',
      build: { outDir, emptyOutDir: true },
    });
    server = serve(outDir);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    const hasAdapter = await page.evaluate(async () => {
      const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      return gpu !== undefined && (await gpu.requestAdapter()) !== null;
    });
    await page.close();
    if (!hasAdapter) {
      noAdapterReason =
        'Chromium offers no WebGPU adapter here (no CPU Vulkan driver: .ci/install-webgpu-driver.sh)';
      console.warn(`apps/web browser test skipped: ${noAdapterReason}`);
    }
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    if (outDir !== '') rmSync(outDir, { recursive: true, force: true });
  });

  const hooks = (parameters: Record<string, string>) =>
    `${origin}/?${new URLSearchParams({ ...parameters, autorun: '1' })}`;

  it('greedy decoding of stories260K (llama2.c files) equals the golden continuation', async (context) => {
    if (noAdapterReason !== undefined) context.skip(noAdapterReason);
    const { model, golden } = await loadStories260K();
    model.dispose();
    const page = await browser.newPage();
    const result = await runInPage(
      page,
      hooks({
        model: '/models/stories260K.bin',
        tokenizer: '/models/tok512.bin',
        prompt: golden.prompt,
        strategy: 'greedy',
        maxTokens: String(golden.greedyNext30.length),
      }),
    );
    await page.close();
    expect(result.status, result.text).toBe('done');
    expect(result.tokens).toEqual(golden.greedyNext30);
    expect(result.keptDots).toBe(1);
  });

  it('beam search of stories260K (GGUF) keeps the beams of the CPU backend in Node, one leaf each', async (context) => {
    if (noAdapterReason !== undefined) context.skip(noAdapterReason);
    const width = 4;
    const maxTokens = 20;
    const { model, tokenizer, golden } = await loadStories260K();
    const engine = DecodingEngine.create(model, { numPages: 256 });
    const expected = await runStrategy(
      beamSearch(engine, {
        prompt: tokenizer.encode(golden.prompt),
        maxTokens,
        width,
        stopTokens: [...tokenizer.endOfGenerationIds],
      }),
    );
    engine.dispose();
    model.dispose();

    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const result = await runInPage(
      page,
      hooks({
        model: '/models/stories260K.gguf',
        prompt: golden.prompt,
        strategy: 'beam',
        width: String(width),
        maxTokens: String(maxTokens),
      }),
    );
    expect(result.status, result.text).toBe('done');
    expect(result.sequences).toEqual(expected.sequences.map((sequence) => sequence.tokens));
    expect(result.tokens).toEqual(expected.sequences[0]!.tokens);
    expect(result.keptDots).toBe(expected.sequences.length);
    expect(result.prunedNodes).toBeGreaterThan(0);
    const screenshot =
      process.env.DEFT_UPDATE_SCREENSHOT === '1' ? readmeScreenshot : path.join(outDir, 'beam-search.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.info(`apps/web screenshot: ${screenshot}`);
    await page.close();
  });

  it('a URL with a width no run accepts shows the problem instead of loading the model', async () => {
    const page = await browser.newPage();
    const result = await runInPage(page, hooks({ model: '/models/stories260K.gguf', width: '-1' }));
    await page.close();
    expect(result.status).toBe('error');
    expect(result.text).toBe('bad page URL: width must be an integer >= 1, not -1');
  });

  it('the stop button ends a run between two forward passes and frees every KV page', async (context) => {
    if (noAdapterReason !== undefined) context.skip(noAdapterReason);
    const page = await browser.newPage();
    await page.goto(
      hooks({ model: '/models/stories260K.gguf', strategy: 'beam', width: '8', maxTokens: '400' }),
    );
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#tree [data-state="pruned"]').length > 0 ||
        document.getElementById('result')?.dataset.status === 'error',
      undefined,
      { timeout: RUN_TIMEOUT_MS },
    );
    await page.click('#stop');
    await page.waitForFunction(
      () => ['stopped', 'done', 'error'].includes(document.getElementById('result')?.dataset.status ?? ''),
      undefined,
      { timeout: RUN_TIMEOUT_MS },
    );
    expect(await page.textContent('#result')).toBe('stopped; KV pages in use: 0');
    await page.close();
  });
});
