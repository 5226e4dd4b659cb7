#!/usr/bin/env node
// Builds the deft_cuda addon (native/build/Release/deft_cuda.node) with node-gyp and nvcc.
//   node scripts/build-native.mjs             build; fails when the compile fails
//   node scripts/build-native.mjs --optional  install path: never fails the install
// Without nvcc (looked up in CUDA_PATH, CUDA_HOME, then PATH) it prints why and exits 0: the package
// still installs, and createCudaBackend() then explains that the addon is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const optional = process.argv.includes('--optional');
const force = process.argv.includes('--force');
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeRoot = path.join(packageRoot, 'native');
const output = path.join(nativeRoot, 'build', 'Release', 'deft_cuda.node');

function log(message) {
  console.log(`[@deft/kernels-cuda] ${message}`);
}

function findNvcc() {
  const tried = [];
  for (const variable of ['CUDA_PATH', 'CUDA_HOME']) {
    const root = process.env[variable];
    if (!root) continue;
    const candidate = path.join(root, 'bin', 'nvcc');
    tried.push(`${variable}=${root}`);
    if (existsSync(candidate)) return { nvcc: candidate, tried };
  }
  for (const directory of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!directory) continue;
    const candidate = path.join(directory, 'nvcc');
    if (existsSync(candidate)) return { nvcc: candidate, tried };
  }
  tried.push('PATH');
  return { nvcc: undefined, tried };
}

/** The CUDA toolkit root: nvcc's own TOP (nvcc may be a wrapper script), else two levels above it. */
function cudaHomeOf(nvcc) {
  try {
    const dryRun = spawnSync(nvcc, ['--dryrun', '-x', 'cu', '-c', '/dev/null', '-o', '/dev/null'], {
      encoding: 'utf8',
    });
    const match = `${dryRun.stdout}${dryRun.stderr}`.match(/#\$ TOP=(.+)/);
    if (match) {
      const top = path.resolve(match[1].trim());
      if (existsSync(path.join(top, 'include', 'cuda_runtime_api.h'))) return top;
    }
  } catch {
    // fall through
  }
  return path.resolve(path.dirname(realpathSync(nvcc)), '..');
}

function newestSource(directory) {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'build') newest = Math.max(newest, newestSource(full));
    } else {
      newest = Math.max(newest, statSync(full).mtimeMs);
    }
  }
  return newest;
}

/** Node's own headers next to the running binary, when they match this Node (no download needed). */
function localNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const versionHeader = path.join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(versionHeader)) return undefined;
  const text = readFileSync(versionHeader, 'utf8');
  const part = (name) => text.match(new RegExp(`#define NODE_${name}_VERSION (\\d+)`))?.[1];
  return `v${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}` === process.version ? prefix : undefined;
}

const { nvcc, tried } = findNvcc();
if (!nvcc) {
  log(`nvcc not found (looked in ${tried.join(', ')}); skipping the CUDA addon build.`);
  log(
    'Install the CUDA toolkit (or set CUDA_PATH) and run `pnpm --filter @deft/kernels-cuda build` to enable the CUDA backend.',
  );
  process.exit(0);
}
if (!force && existsSync(output) && statSync(output).mtimeMs > newestSource(nativeRoot)) {
  log(`addon is up to date: ${path.relative(process.cwd(), output)}`);
  process.exit(0);
}
const cudaHome = cudaHomeOf(nvcc);
log(`building the CUDA addon with ${nvcc} (CUDA at ${cudaHome})`);
const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
const nodeDir = localNodeDir();
const jobs = Math.max(1, Math.min(4, (await import('node:os')).cpus().length));
const common = nodeDir ? [`--nodedir=${nodeDir}`] : [];
const makefile = path.join(nativeRoot, 'build', 'Makefile');
const needsConfigure =
  force ||
  !existsSync(makefile) ||
  statSync(makefile).mtimeMs < statSync(path.join(nativeRoot, 'binding.gyp')).mtimeMs;
const steps = [
  ...(needsConfigure ? [[nodeGyp, 'configure', '--release', ...common]] : []),
  [nodeGyp, 'build', '--release', `--jobs=${jobs}`, ...common],
];
const started = Date.now();
try {
  for (const step of steps) {
    execFileSync(process.execPath, step, {
      cwd: nativeRoot,
      stdio: 'inherit',
      env: { ...process.env, DEFT_CUDA_HOME: cudaHome, DEFT_NVCC: nvcc },
    });
  }
} catch (error) {
  const message = `the CUDA addon build failed (${error instanceof Error ? error.message : String(error)})`;
  if (optional) {
    log(`${message}; the package is installed without the CUDA backend.`);
    process.exit(0);
  }
  log(message);
  process.exit(1);
}
log(`built ${path.relative(process.cwd(), output)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
