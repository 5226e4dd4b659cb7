#!/usr/bin/env node
// Builds the deft_cuda addon (native/build/Release/deft_cuda.node) with node-gyp and nvcc.
//   node scripts/build-native.mjs             build; fails when the compile fails
//   node scripts/build-native.mjs --optional  install path: never fails the install
// In --optional mode every failure (no nvcc, an nvcc that does not run, no node-gyp, a failed compile,
// anything unexpected) ends in one line "installed without the CUDA addon: <why>; <how to fix>" and
// exit 0: the package still installs, and createCudaBackend() then explains that the addon is missing.
// node-gyp's own output is kept back unless the build fails; then its tail is shown.
// Without nvcc (looked up in CUDA_PATH, CUDA_HOME, then PATH) it exits 0 in both modes.
// npm shows an install script's output only when the script fails, so the line is also written to
// native/build/install-reason.txt, which createCudaBackend() quotes when the addon is missing; a build
// that succeeds (or finds the addon up to date) removes the file.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const optional = process.argv.includes('--optional');
const force = process.argv.includes('--force');
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeRoot = path.join(packageRoot, 'native');
const output = path.join(nativeRoot, 'build', 'Release', 'deft_cuda.node');
/** Where the reason for a missing addon is kept for the first use (see src/native/load-addon.ts). */
const reasonFile = path.join(nativeRoot, 'build', 'install-reason.txt');

/** How a user outside this repository re-runs the build once the cause is fixed. */
const REBUILD = 'then run `npm rebuild @deft/kernels-cuda` (or reinstall the package)';
/** Lines of the failed build's output shown before the summary line. */
const TAIL_LINES = 40;

function log(message) {
  console.log(`[@deft/kernels-cuda] ${message}`);
}

/** Keeps `line` for the first use of the package; never fails the script. */
function recordReason(line) {
  try {
    mkdirSync(path.dirname(reasonFile), { recursive: true });
    writeFileSync(reasonFile, `${line}\n`);
  } catch {
    // A read-only install directory: the line printed above is all there is.
  }
}

function clearReason() {
  try {
    rmSync(reasonFile, { force: true });
  } catch {
    // Nothing to clear, or nothing that can be cleared.
  }
}

/** Reports why the addon is not built and exits: 0 on the install path, `failCode` otherwise. */
function giveUp(why, fix, failCode = 1) {
  const line = `${optional ? 'installed without the CUDA addon' : 'the CUDA addon was not built'}: ${why}; ${fix}`;
  log(line);
  recordReason(line);
  process.exit(optional ? 0 : failCode);
}

/** Whether nvcc runs at all (a broken toolkit or a stale wrapper fails here, fast). */
function nvccProblem(nvcc) {
  const result = spawnSync(nvcc, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (result.error) return `${nvcc} does not run (${result.error.message})`;
  if (result.status !== 0) {
    const firstLine = `${result.stderr ?? ''}${result.stdout ?? ''}`.trim().split('\n')[0] ?? '';
    const status = result.status === null ? `signal ${result.signal}` : `exit ${result.status}`;
    return `${nvcc} --version failed (${status}${firstLine ? `: ${firstLine}` : ''})`;
  }
  return undefined;
}

/**
 * node-gyp as a command: this package's own (a dev dependency, present in the repository), the one npm
 * points lifecycle scripts at (`npm_config_node_gyp`), the one bundled with the npm next to this Node,
 * then `node-gyp` on PATH.
 */
function findNodeGyp() {
  const tried = [];
  try {
    const script = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
    return { command: process.execPath, prefix: [script], tried };
  } catch {
    tried.push('the package dependency node-gyp');
  }
  const scripts = [
    process.env.npm_config_node_gyp,
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  for (const script of scripts) {
    if (!script) continue;
    if (existsSync(script)) return { command: process.execPath, prefix: [script], tried };
    tried.push(script);
  }
  for (const directory of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!directory) continue;
    const candidate = path.join(directory, 'node-gyp');
    if (existsSync(candidate)) return { command: candidate, prefix: [], tried };
  }
  tried.push('node-gyp on PATH');
  return { command: undefined, prefix: [], tried };
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

function main() {
  const { nvcc, tried } = findNvcc();
  if (!nvcc) {
    giveUp(
      `nvcc not found (looked in ${tried.join(', ')})`,
      `install the CUDA toolkit (nvcc on PATH, or set CUDA_PATH), ${REBUILD}`,
      0,
    );
  }
  if (!force && existsSync(output) && statSync(output).mtimeMs > newestSource(nativeRoot)) {
    log(`addon is up to date: ${path.relative(process.cwd(), output)}`);
    clearReason();
    process.exit(0);
  }
  const problem = nvccProblem(nvcc);
  if (problem) {
    giveUp(problem, `repair the CUDA toolkit or point CUDA_PATH at a working one, ${REBUILD}`);
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp.command) {
    giveUp(
      `node-gyp not found (tried ${nodeGyp.tried.join(', ')})`,
      `install it (\`npm install -g node-gyp\`), ${REBUILD}`,
    );
  }
  const cudaHome = cudaHomeOf(nvcc);
  log(`building the CUDA addon with ${nvcc} (CUDA at ${cudaHome}); this takes a few minutes`);
  const nodeDir = localNodeDir();
  const jobs = Math.max(1, Math.min(4, cpus().length));
  const common = nodeDir ? [`--nodedir=${nodeDir}`] : [];
  const makefile = path.join(nativeRoot, 'build', 'Makefile');
  const needsConfigure =
    force ||
    !existsSync(makefile) ||
    statSync(makefile).mtimeMs < statSync(path.join(nativeRoot, 'binding.gyp')).mtimeMs;
  const steps = [
    ...(needsConfigure ? [['configure', '--release', ...common]] : []),
    ['build', '--release', `--jobs=${jobs}`, ...common],
  ];
  const started = Date.now();
  for (const step of steps) {
    const result = spawnSync(nodeGyp.command, [...nodeGyp.prefix, ...step], {
      cwd: nativeRoot,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, DEFT_CUDA_HOME: cudaHome, DEFT_NVCC: nvcc },
    });
    if (result.error || result.status !== 0) {
      const text = `${result.stdout ?? ''}${result.stderr ?? ''}`.trimEnd();
      const lines = text.split('\n');
      if (text) {
        console.log(
          `[@deft/kernels-cuda] last ${Math.min(TAIL_LINES, lines.length)} lines of node-gyp ${step[0]}:`,
        );
        console.log(lines.slice(-TAIL_LINES).join('\n'));
      }
      const status = result.error
        ? result.error.message
        : result.status === null
          ? `signal ${result.signal}`
          : `exit ${result.status}`;
      giveUp(
        `node-gyp ${step[0]} failed (${status})`,
        '`npm rebuild @deft/kernels-cuda --foreground-scripts` shows the build output; ' +
          `fix the toolchain (nvcc, a C++ compiler, make, Python), ${REBUILD}`,
      );
    }
  }
  clearReason();
  log(`built ${path.relative(process.cwd(), output)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

try {
  main();
} catch (error) {
  giveUp(
    `unexpected error in the build script (${error instanceof Error ? error.message : String(error)})`,
    `report it with this line, ${REBUILD}`,
  );
}
