// Every ```ts block of the package READMEs compiles as a self-contained module against the workspace sources
// (scripts/check-readme-examples.mjs, also run in CI as `pnpm run check:readmes`).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../..', import.meta.url));

describe('README examples', () => {
  it('every ts code block of a package README typechecks', () => {
    const result = spawnSync(process.execPath, [path.join(root, 'scripts', 'check-readme-examples.mjs')], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/README examples: [1-9]\d* blocks typecheck/);
  });
});
