// What npm would publish: every public package's tarball holds LICENSE and no test code, and its README
// says that it is ESM-only (scripts/check-pack.mjs, also run in CI as `pnpm run check:pack`).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../..', import.meta.url));
const npmRuns = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;
if (!npmRuns) console.info('[testing] packaging test skipped: npm is not on the PATH');

describe('published packages', () => {
  it('the repository has the MIT LICENSE and the root README says the packages are ESM-only', () => {
    expect(readFileSync(path.join(root, 'LICENSE'), 'utf8')).toMatch(
      /^MIT License\n\nCopyright \(c\) 2026 The DeFT for TypeScript authors\n/,
    );
    expect(readFileSync(path.join(root, 'README.md'), 'utf8')).toMatch(/ESM-only/);
  });

  it.skipIf(!npmRuns)('every tarball holds LICENSE, no tests, and a README that says ESM-only', () => {
    const result = spawnSync(process.execPath, [path.join(root, 'scripts', 'check-pack.mjs')], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/@deft\/core: \d+ files with LICENSE/);
  });
});
