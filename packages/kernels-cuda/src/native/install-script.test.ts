// The install as a user meets it: pack @deft/core and @deft/kernels-cuda, install both tarballs into an
// empty project with npm, and check that the install succeeds and says why the CUDA addon is absent when
// the native build cannot run (no nvcc on the PATH, an nvcc that does not run, an nvcc whose compile fails),
// and that a plain `npm install` (which hides the install script's output) still gets the reason to the
// user: createCudaBackend() quotes it on first use.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const packageRoot = fileURLToPath(new URL('../..', import.meta.url));
const repositoryRoot = path.resolve(packageRoot, '..', '..');
const coreRoot = path.join(repositoryRoot, 'packages', 'core');
const SUMMARY = /installed without the CUDA addon: (.+); (.+)/;

function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMilliseconds?: number },
) {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: options.timeoutMilliseconds ?? 120_000,
  });
  return {
    status: result.status,
    output: `${result.stdout ?? ''}${result.stderr ?? ''}`,
    error: result.error,
  };
}

/** `pnpm pack` rewrites `workspace:` ranges (npm pack would leave them, and npm install rejects them). */
function pnpmCommand(): string[] | undefined {
  const manifest = JSON.parse(readFileSync(path.join(repositoryRoot, 'package.json'), 'utf8')) as {
    packageManager?: string;
  };
  const candidates: string[][] = [['pnpm'], ['npx', '--yes', manifest.packageManager ?? 'pnpm']];
  for (const candidate of candidates) {
    const [command, ...args] = candidate as [string, ...string[]];
    if (run(command, [...args, '--version'], { cwd: repositoryRoot }).status === 0) return candidate;
  }
  return undefined;
}

/** Newest modification time of the files under `directory`. */
function newestFile(directory: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const full = path.join(directory, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestFile(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** Why packing is impossible here, or undefined when it is possible. */
function packingProblem(): string | undefined {
  if (process.platform === 'win32') return 'the fake nvcc is a shell script';
  if (run('npm', ['--version'], { cwd: repositoryRoot }).status !== 0) return 'npm is not on the PATH';
  if (!pnpmCommand()) return 'neither pnpm nor `npx pnpm` runs here';
  return undefined;
}

const problem = packingProblem();
if (problem) console.info(`[kernels-cuda] packed-install tests skipped: ${problem}`);

/** PATH without any directory that holds nvcc, plus one holding only node and npm. */
function pathWithoutNvcc(shims: string): string {
  mkdirSync(shims, { recursive: true });
  const npm = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (!existsSync(path.join(shims, 'node'))) symlinkSync(process.execPath, path.join(shims, 'node'));
  if (npm && !existsSync(path.join(shims, 'npm'))) symlinkSync(npm, path.join(shims, 'npm'));
  const kept = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((directory) => directory && !existsSync(path.join(directory, 'nvcc')));
  return [shims, ...kept].join(path.delimiter);
}

/** The environment of a user's shell: no CUDA variables, no package-manager variables from this run. */
function userEnvironment(pathValue: string): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_|CUDA_PATH$|CUDA_HOME$|DEFT_)/i.test(name)) continue;
    environment[name] = value;
  }
  environment.PATH = pathValue;
  return environment;
}

/** The nvcc on this machine's PATH, if any. */
const realNvcc = (process.env.PATH ?? '')
  .split(path.delimiter)
  .map((directory) => path.join(directory, 'nvcc'))
  .find((candidate) => existsSync(candidate));

describe.skipIf(problem !== undefined)('npm install of the packed @deft/kernels-cuda', () => {
  let workDirectory = '';
  let tarballs: string[] = [];

  beforeAll(() => {
    workDirectory = mkdtempSync(path.join(tmpdir(), 'deft-install-'));
    const pnpm = pnpmCommand() as [string, ...string[]];
    for (const directory of [coreRoot, packageRoot]) {
      const bundle = path.join(directory, 'dist', 'index.js');
      // Pack what the sources say: build when the bundle is missing or older than a source file.
      if (!existsSync(bundle) || statSync(bundle).mtimeMs < newestFile(path.join(directory, 'src'))) {
        const built = run(path.join(repositoryRoot, 'node_modules', '.bin', 'tsup'), [], { cwd: directory });
        expect(built.status, built.output).toBe(0);
      }
      const packed = run(pnpm[0], [...pnpm.slice(1), 'pack', '--pack-destination', workDirectory], {
        cwd: directory,
      });
      expect(packed.status, packed.output).toBe(0);
    }
    tarballs = readdirSync(workDirectory)
      .filter((name) => name.endsWith('.tgz'))
      .map((name) => path.join(workDirectory, name));
    expect(tarballs).toHaveLength(2);
  });

  afterAll(() => {
    if (workDirectory) rmSync(workDirectory, { recursive: true, force: true });
  });

  function install(
    name: string,
    pathValue: string,
    options: { foregroundScripts?: boolean; timeoutMilliseconds?: number } = {},
  ) {
    const project = path.join(workDirectory, name);
    mkdirSync(project);
    writeFileSync(
      path.join(project, 'package.json'),
      '{ "name": "consumer", "version": "1.0.0", "private": true, "type": "module" }\n',
    );
    // --foreground-scripts shows the install script's output, which npm otherwise keeps back on success.
    const foreground = options.foregroundScripts === false ? [] : ['--foreground-scripts'];
    const result = run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', ...foreground, ...tarballs],
      {
        cwd: project,
        env: userEnvironment(pathValue),
        ...(options.timeoutMilliseconds === undefined
          ? {}
          : { timeoutMilliseconds: options.timeoutMilliseconds }),
      },
    );
    return { ...result, project, pathValue };
  }

  /** What a user's first `createCudaBackend()` says in the installed project (exit 3: it threw). */
  function firstUse(project: string, pathValue: string) {
    writeFileSync(
      path.join(project, 'first-use.js'),
      "import { createCudaBackend } from '@deft/kernels-cuda';\n" +
        'try { createCudaBackend(); } catch (error) { console.log(error.message); process.exit(3); }\n',
    );
    return run('node', ['first-use.js'], { cwd: project, env: userEnvironment(pathValue) });
  }

  function fakeNvcc(name: string, script: string): string {
    const directory = path.join(workDirectory, name);
    mkdirSync(directory);
    writeFileSync(path.join(directory, 'nvcc'), script);
    chmodSync(path.join(directory, 'nvcc'), 0o755);
    return [directory, pathWithoutNvcc(path.join(workDirectory, 'shims'))].join(path.delimiter);
  }

  it('installs without nvcc on the PATH and says why', () => {
    const result = install('no-nvcc', pathWithoutNvcc(path.join(workDirectory, 'shims')));
    expect(result.status, result.output).toBe(0);
    expect(result.output).toMatch(SUMMARY);
    expect(result.output).toMatch(/nvcc not found.*; install the CUDA toolkit/);
    expect(
      existsSync(path.join(result.project, 'node_modules', '@deft', 'kernels-cuda', 'dist', 'index.js')),
    ).toBe(true);
  });

  it('after a plain npm install, which hides the install output, the first createCudaBackend() says why', () => {
    const result = install('plain-no-nvcc', pathWithoutNvcc(path.join(workDirectory, 'shims')), {
      foregroundScripts: false,
    });
    expect(result.status, result.output).toBe(0);
    const installed = path.join(result.project, 'node_modules', '@deft', 'kernels-cuda');
    expect(readFileSync(path.join(installed, 'native', 'build', 'install-reason.txt'), 'utf8')).toMatch(
      SUMMARY,
    );
    const used = firstUse(result.project, result.pathValue);
    expect(used.status, used.output).toBe(3);
    expect(used.output).toMatch(/the CUDA addon could not be loaded/);
    expect(used.output).toMatch(
      /When the package was installed: installed without the CUDA addon: nvcc not found .*; install the CUDA toolkit/,
    );
    expect(used.output).toMatch(/npm rebuild @deft\/kernels-cuda/);
  });

  it('installs when nvcc does not run and says why', () => {
    const result = install(
      'broken-nvcc',
      fakeNvcc('broken-bin', '#!/bin/sh\necho "nvcc: broken toolkit" >&2\nexit 1\n'),
    );
    expect(result.status, result.output).toBe(0);
    expect(result.output).toMatch(
      /installed without the CUDA addon: .*nvcc --version failed \(exit 1: nvcc: broken toolkit\); /,
    );
    expect(result.output).not.toMatch(/MODULE_NOT_FOUND|npm error/);
  });

  it('installs when the compile fails, showing the tail of the build output then the summary', () => {
    const version = realNvcc
      ? `exec "${realNvcc}" "$@"`
      : 'echo "Cuda compilation tools, release 13.0"; exit 0';
    const result = install(
      'failing-compile',
      fakeNvcc(
        'failing-bin',
        `#!/bin/sh\nif [ "$1" = --version ]; then ${version}; fi\necho "nvcc: compile error" >&2\nexit 2\n`,
      ),
    );
    expect(result.status, result.output).toBe(0);
    expect(result.output).toMatch(/last \d+ lines of node-gyp (configure|build):/);
    expect(result.output).toMatch(/installed without the CUDA addon: node-gyp (configure|build) failed/);
    expect(result.output).not.toMatch(/MODULE_NOT_FOUND|npm error/);
    const used = firstUse(result.project, result.pathValue);
    expect(used.status, used.output).toBe(3);
    expect(used.output).toMatch(
      /When the package was installed: installed without the CUDA addon: node-gyp (configure|build) failed .*--foreground-scripts` shows the build output/,
    );
  });

  it.skipIf(realNvcc === undefined)(
    'installs with the real nvcc on the PATH: builds the addon, which then loads',
    () => {
      const pathValue = [path.dirname(realNvcc!), pathWithoutNvcc(path.join(workDirectory, 'shims'))].join(
        path.delimiter,
      );
      // A real build: four kernel files for three targets, minutes on two cores.
      const result = install('real-nvcc', pathValue, { timeoutMilliseconds: 540_000 });
      expect(result.status, result.output).toBe(0);
      expect(result.output).toMatch(/built native\/build\/Release\/deft_cuda\.node/);
      expect(result.output).not.toMatch(/installed without the CUDA addon|MODULE_NOT_FOUND|npm error/);
      const addon = path.join(
        result.project,
        'node_modules',
        '@deft',
        'kernels-cuda',
        'native',
        'build',
        'Release',
        'deft_cuda.node',
      );
      expect(existsSync(addon)).toBe(true);
      // The addon loads: the first use fails only for want of a device (or succeeds where there is one).
      const used = firstUse(result.project, pathValue);
      if (used.status !== 0) {
        expect(used.status, used.output).toBe(3);
        expect(used.output).toMatch(/no CUDA device or driver is available/);
        expect(used.output).not.toMatch(/When the package was installed/);
      }
    },
    600_000,
  );
});
