import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from '@deft/core';

/** What `probe()` reports about the CUDA driver and devices; never throws. */
export interface CudaProbe {
  readonly deviceCount: number;
  /** `cudaError_t` of `cudaGetDeviceCount` (0 on success; 35 = driver missing or too old, 100 = no device). */
  readonly error: number;
  readonly errorName: string;
  readonly errorMessage: string;
  /** e.g. 13000 for CUDA 13.0; 0 when there is no driver. */
  readonly driverVersion: number;
  readonly runtimeVersion: number;
}

/** Properties of the device a context runs on. */
export interface CudaDeviceInfo {
  readonly name: string;
  readonly ordinal: number;
  readonly multiprocessors: number;
  /** e.g. `"9.0"`. */
  readonly computeCapability: string;
  readonly l2Bytes: number;
  /** Opt-in shared memory per block. */
  readonly sharedBytesPerBlock: number;
  readonly totalMemory: number;
  /** KV tiles the tensor-core kernel can keep in shared memory at head dim 128. */
  readonly ringStagesLimit: number;
}

/** What the addon reports about a prepared schedule. */
export interface NativePlanSummary {
  readonly handle: number;
  readonly ringStages: number;
  /** 1: tensor-core kernel, 2: CUDA-core kernel. */
  readonly kernel: number;
  readonly sharedBytes: number;
}

/** Dtype codes the addon takes: 0 = f32, 1 = f16. */
export type NativeDtype = 0 | 1;

/**
 * The whole surface of the `deft_cuda` addon (native/src/addon.cc). Objects are integer handles; a
 * failed call throws an `Error` with `deftStatus` (`"cuda"`, `"no-device"`, `"invalid-argument"`,
 * `"not-found"`) and `cudaError` (the `cudaError_t`, 0 when none). Work is enqueued on the context's
 * stream; `download*`, `readKv`, `synchronize` and `elapsedMilliseconds` wait for it.
 */
export interface CudaAddon {
  readonly abiVersion: number;
  probe(): CudaProbe;
  createContext(device: number): number;
  destroyContext(context: number): void;
  deviceInfo(context: number): CudaDeviceInfo;
  synchronize(context: number): void;

  allocate(context: number, bytes: number): number;
  freeBuffer(buffer: number): void;
  upload(buffer: number, byteOffset: number, data: ArrayBufferView): void;
  uploadF32AsF16(buffer: number, elementOffset: number, data: Float32Array): void;
  download(buffer: number, byteOffset: number, target: ArrayBufferView): void;
  downloadF16AsF32(buffer: number, elementOffset: number, target: Float32Array): void;
  fillF32(buffer: number, elementOffset: number, count: number, value: number): void;
  /** Device-to-device copy; `useKernel` uses the 16-byte copy kernel instead of `cudaMemcpyAsync`. */
  copyBuffer(target: number, source: number, bytes: number, useKernel: boolean): void;

  createStorage(
    context: number,
    numLayers: number,
    numPages: number,
    pageSize: number,
    numKvHeads: number,
    headDim: number,
    dtype: NativeDtype,
  ): number;
  freeStorage(storage: number): void;
  /** `k`/`v`: host f32 arrays, or buffer handles of device tensors of dtype `sourceDtype`. */
  writeKv(
    storage: number,
    layer: number,
    slots: Int32Array,
    k: Float32Array | number,
    v: Float32Array | number,
    sourceDtype: NativeDtype,
  ): void;
  readKv(storage: number, layer: number, slots: Int32Array, k: Float32Array, v: Float32Array): void;
  copyPages(storage: number, source: Int32Array, target: Int32Array): void;

  /** Uploads a packed schedule (see `packSchedule`) in one copy. */
  preparePlan(context: number, header: Int32Array, bytes: Uint8Array): NativePlanSummary;
  freePlan(plan: number): void;
  /** One layer of tree attention: enqueues one launch. */
  treeAttention(plan: number, storage: number, layer: number, q: number, out: number, scale: number): void;
  /** The same, waited for; writes each attention CTA's `[multiprocessor, startNs, endNs]` to `profile`. */
  profileTreeAttention(
    plan: number,
    storage: number,
    layer: number,
    q: number,
    out: number,
    scale: number,
    profile: Float64Array,
  ): void;

  createEvent(context: number): number;
  destroyEvent(event: number): void;
  recordEvent(event: number): void;
  /** Waits for `end`, then returns the time between the two events in milliseconds. */
  elapsedMilliseconds(start: number, end: number): number;
  /** Reads a buffer of at least `max(bytes, 256 MiB, 4 × L2)` to evict the L2 cache. */
  flushL2(context: number, bytes: number): void;
  createSlotList(storage: number, slots: Int32Array): number;
  freeSlotList(list: number): void;
  /** Streams the K and V rows of a slot list once, in order, and discards them. */
  readOnce(storage: number, layer: number, list: number, perHead: number): void;
  emptyKernel(context: number): void;
  /** Enqueues the tensor-core rate kernel: `blocks` x 8 warps x `iterations` x 8 mma.sync m16n8k16. */
  mmaRate(context: number, blocks: number, iterations: number): void;
  /** Enqueues a kernel that holds the stream for `nanoseconds` (at most 60 s). */
  spin(context: number, nanoseconds: number): void;

  // Model ops: operands are buffer handles of one context; sizes are checked against the buffers.
  /** `out[r, :] = table[rows[r], :]` as f32 (embedding and gatherRows). */
  gatherRows(
    table: number,
    tableDtype: NativeDtype,
    tableRows: number,
    rows: Int32Array,
    out: number,
    width: number,
  ): void;
  /**
   * `outs[i][m, n[i]] = x[m, k] · weights[i][n[i], k]ᵀ` for 1-4 matmuls of one input whose weights share
   * `weightDtype` (handles in Float64Arrays), launched together where they can be.
   */
  matmul(
    x: number,
    weights: Float64Array,
    weightDtype: NativeDtype,
    outs: Float64Array,
    m: number,
    k: number,
    n: Int32Array,
  ): void;
  /** RMSNorm of `rows` rows of `width`; with a `residual` handle, `x += residual` first (written back). */
  rmsNorm(
    x: number,
    weight: number,
    weightDtype: NativeDtype,
    out: number,
    rows: number,
    width: number,
    epsilon: number,
    residual: number | null,
  ): void;
  /** RoPE in place on `[positions.length, numHeads, headDim]`; `half` 1 pairs (i, i + headDim / 2). */
  rope(
    x: number,
    positions: Int32Array,
    numHeads: number,
    headDim: number,
    theta: number,
    half: 0 | 1,
    frequencyFactors: Float32Array | null,
  ): void;
  /** `op` 0: `out = a + b`; 1: `out = silu(a) · b`. */
  elementwise(op: number, a: number, b: number, out: number, count: number): void;
  /** Softmax of `x / temperature` per row, or (`logarithm` 1) log-softmax. */
  softmax(x: number, out: number, rows: number, columns: number, temperature: number, logarithm: 0 | 1): void;
  /** Waits; writes each row's `k` best columns (and values, unless null), best first. */
  topK(
    x: number,
    rows: number,
    columns: number,
    k: number,
    indices: Int32Array,
    values: Float32Array | null,
  ): void;
  copySlots(storage: number, source: Int32Array, target: Int32Array): void;
  /** Seeded uniform values in `[low, high)` over the first `count` elements of a buffer. */
  fillUniform(
    buffer: number,
    dtype: NativeDtype,
    count: number,
    seed: number,
    low: number,
    high: number,
  ): void;
  /** Seeded uniform values in `[low, high)` over every K and V element of a storage. */
  fillStorageUniform(storage: number, seed: number, low: number, high: number): void;
}

/** Environment variable naming the addon file explicitly (bundles cannot find it from their own URL). */
export const CUDA_ADDON_ENV = 'DEFT_CUDA_ADDON';

const EXPECTED_ABI = 3;

let cached: CudaAddon | undefined;

const PACKAGE_NAME = '@deft/kernels-cuda';
/** The origin of the package's own build among the {@link AddonCandidate}s. */
const LOCAL_ORIGIN = "this package's build";

/**
 * Where the package's own build puts the addon: `native/build/Release/deft_cuda.node` under the package
 * root, the nearest folder above this module (in `src/native/` or the bundled `dist/`) whose
 * `package.json` names this package; `undefined` when there is none (the module was bundled elsewhere).
 */
export function localAddonPath(moduleUrl: string = import.meta.url): string | undefined {
  let directory = path.dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const manifest = path.join(directory, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME)
          return path.join(directory, 'native', 'build', 'Release', 'deft_cuda.node');
      } catch {
        // An unreadable manifest is not this package's: keep looking above it.
      }
    }
    const parent = path.dirname(directory);
    if (parent === directory) return undefined;
    directory = parent;
  }
}

/**
 * Loads the `deft_cuda` addon once: first the file named by `DEFT_CUDA_ADDON`, then the package's
 * own build (`native/build/Release/deft_cuda.node` under the package root, see {@link localAddonPath}).
 *
 * @param explicitPath A path to try before everything else.
 * @returns The addon's functions (see {@link CudaAddon}).
 * @throws BackendError listing every path tried, why each failed, and how to build the addon.
 * @example
 * ```ts
 * const addon = loadCudaAddon();
 * console.log(addon.probe().deviceCount);
 * ```
 */
export function loadCudaAddon(explicitPath?: string): CudaAddon {
  if (cached !== undefined && explicitPath === undefined) return cached;
  const addon = loadAddonFrom(addonCandidates(explicitPath));
  if (explicitPath === undefined) cached = addon;
  return addon;
}

/** A file to try and where its path came from, for the error message. */
export interface AddonCandidate {
  readonly path: string;
  readonly origin: string;
}

/** The files {@link loadCudaAddon} tries, in order: the argument, `DEFT_CUDA_ADDON`, this package's build. */
export function addonCandidates(explicitPath?: string): AddonCandidate[] {
  const candidates: AddonCandidate[] = [];
  if (explicitPath !== undefined) candidates.push({ path: explicitPath, origin: 'argument' });
  const fromEnvironment = process.env[CUDA_ADDON_ENV];
  if (fromEnvironment !== undefined && fromEnvironment !== '') {
    candidates.push({ path: fromEnvironment, origin: CUDA_ADDON_ENV });
  }
  const local = localAddonPath();
  if (local !== undefined) candidates.push({ path: local, origin: LOCAL_ORIGIN });
  return candidates;
}

/**
 * The line the install script recorded next to the package's build (`native/build/install-reason.txt`)
 * when it installed the package without the addon: npm shows an install script's output only when the
 * script fails, so this is where a user of a plain `npm install` first reads why the addon is missing.
 *
 * @param addonPath The package's build path ({@link localAddonPath}).
 * @returns The line, or `undefined` when there is none (the addon was built, or never tried).
 */
export function recordedInstallReason(addonPath: string | undefined = localAddonPath()): string | undefined {
  if (addonPath === undefined) return undefined;
  const file = path.join(path.dirname(path.dirname(addonPath)), 'install-reason.txt');
  try {
    const line = readFileSync(file, 'utf8').split('\n')[0]?.trim();
    return line ? line : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Loads the first candidate that loads with the expected ABI.
 * @throws BackendError listing each candidate and why it failed, what the install script recorded (see
 *   {@link recordedInstallReason}), and how a user rebuilds the addon.
 */
export function loadAddonFrom(candidates: readonly AddonCandidate[]): CudaAddon {
  const require = createRequire(import.meta.url);
  const attempts: string[] = [];
  for (const { path: file, origin } of candidates) {
    if (!existsSync(file)) {
      attempts.push(`${file} (${origin}): not found`);
      continue;
    }
    try {
      const addon = require(file) as CudaAddon;
      if (addon.abiVersion !== EXPECTED_ABI) {
        attempts.push(
          `${file} (${origin}): built for ABI ${String(addon.abiVersion)}, expected ${EXPECTED_ABI}; rebuild it`,
        );
        continue;
      }
      return addon;
    } catch (error) {
      attempts.push(
        `${file} (${origin}): ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      );
    }
  }
  const local = candidates.find((candidate) => candidate.origin === LOCAL_ORIGIN);
  const reason =
    local === undefined || existsSync(local.path) ? undefined : recordedInstallReason(local.path);
  throw new BackendError(
    'cuda',
    `the CUDA addon could not be loaded. Tried:\n  - ${attempts.join('\n  - ')}\n` +
      (reason === undefined ? '' : `When the package was installed: ${reason}\n`) +
      `Build it with \`npm rebuild ${PACKAGE_NAME}\` (needs the CUDA toolkit: nvcc on PATH or CUDA_PATH), ` +
      `or set ${CUDA_ADDON_ENV} to the path of a built deft_cuda.node.`,
    { argument: CUDA_ADDON_ENV, expected: 'a loadable deft_cuda.node', actual: attempts },
  );
}
