#!/usr/bin/env node
// Installs the workspace with the pinned pnpm when it is not installed yet (or the lockfile changed),
// so `npm test` and `npm run bench` work on a fresh clone with only Node 20 and npm.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PNPM = 'pnpm@10.34.9';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const marker = join(root, 'node_modules', '.modules.yaml');
const lockfile = join(root, 'pnpm-lock.yaml');

const installed = existsSync(marker) && statSync(marker).mtimeMs >= statSync(lockfile).mtimeMs;
if (!installed) {
  console.error(`[deft] installing the workspace with ${PNPM} (first run only)…`);
  const result = spawnSync('npx', ['--yes', PNPM, 'install', '--frozen-lockfile'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  if (result.status !== 0) {
    console.error(`[deft] install failed (exit ${result.status}); run \`npx ${PNPM} install\` to see why`);
    process.exit(result.status ?? 1);
  }
}
