/// <reference types="@webgpu/types" />
import { BackendError, UnsupportedError } from '@deft/core';

/** Options of {@link requestWebGpuDevice}. */
export interface RequestWebGpuDeviceOptions {
  /** Passed to `requestAdapter` (default `'high-performance'`). */
  readonly powerPreference?: GPUPowerPreference;
  /**
   * Node only: options for the `webgpu` package's `create()` (Dawn), e.g.
   * `['disable-dawn-features=timestamp_quantization']`.
   */
  readonly dawnOptions?: readonly string[];
  /** Ask for `shader-f16` when the adapter has it (default true). */
  readonly shaderF16?: boolean;
  /** Ask for `subgroups` when the adapter has it (default true). */
  readonly subgroups?: boolean;
  /** Ask for `timestamp-query` when the adapter has it (default true). */
  readonly timestampQuery?: boolean;
  /** Upper bound on `maxComputeWorkgroupStorageSize` to request (default 48 KiB). */
  readonly maxWorkgroupStorageBytes?: number;
  /** Device label. */
  readonly label?: string;
}

/**
 * A device created by {@link requestWebGpuDevice}, with the adapter and (in Node) the Dawn instance that
 * must stay referenced while the device lives. `dispose()` destroys the device and releases the instance
 * (idempotent).
 */
export interface WebGpuDeviceHandle {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** `"node"` (Dawn through the `webgpu` package) or `"browser"` (`navigator.gpu`). */
  readonly environment: 'node' | 'browser';
  /** A short description of the adapter, e.g. `"nvidia hopper (NVIDIA H100 80GB HBM3)"`. */
  readonly description: string;
  /** The Dawn instance (Node) or `navigator.gpu` (browser); kept referenced for the device's lifetime. */
  readonly gpu: GPU;
  readonly disposed: boolean;
  dispose(): void;
}

interface DawnModule {
  create(options: string[]): GPU;
}

// The Dawn instances of live handles. dawn.node crashes at random if the object returned by `create()`
// is collected while an adapter or device of it is still in use, so each handle pins its instance here
// until it is disposed.
const pinnedInstances = new Set<GPU>();

async function loadDawn(options: readonly string[]): Promise<GPU> {
  // A variable specifier keeps bundlers from pulling the Node-only package into browser builds.
  const moduleName = 'webgpu';
  let dawn: DawnModule;
  try {
    dawn = (await import(/* @vite-ignore */ moduleName)) as DawnModule;
  } catch (cause) {
    throw new UnsupportedError(
      'WebGPU in Node needs the `webgpu` package (Dawn): install it with `pnpm add webgpu`, or pass your own GPUDevice to createWebGpuBackend()',
      { argument: 'webgpu', expected: 'the webgpu package', cause },
    );
  }
  return dawn.create([...options]);
}

/** Describes an adapter in one line. */
export function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (info === undefined) return 'WebGPU device';
  const name = [info.vendor, info.architecture].filter((part) => part !== '').join(' ');
  const detail = info.description !== '' ? info.description : info.device;
  if (name === '') return detail !== '' ? detail : 'WebGPU device';
  return detail !== '' ? `${name} (${detail})` : name;
}

/**
 * Creates a `GPUDevice` for the DeFT kernels, in a browser (`navigator.gpu`) or in Node (the `webgpu`
 * package, loaded on demand). Requests the limits the kernels use (workgroup storage up to 48 KiB, the
 * adapter's largest storage binding and buffer) and the optional features the adapter has:
 * `shader-f16`, `subgroups`, `timestamp-query`.
 *
 * @throws UnsupportedError when WebGPU is unavailable (no `navigator.gpu`, no `webgpu` package).
 * @throws BackendError when no adapter is found or the device cannot be created.
 * @example
 * ```ts
 * const handle = await requestWebGpuDevice();
 * const backend = createWebGpuBackend({ device: handle.device });
 * // ...
 * backend.dispose();
 * handle.dispose();
 * ```
 */
export async function requestWebGpuDevice(
  options: RequestWebGpuDeviceOptions = {},
): Promise<WebGpuDeviceHandle> {
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  let gpu: GPU;
  let environment: 'node' | 'browser';
  if (browserGpu !== undefined && options.dawnOptions === undefined) {
    gpu = browserGpu;
    environment = 'browser';
  } else if (isNode) {
    gpu = await loadDawn(options.dawnOptions ?? []);
    environment = 'node';
  } else {
    throw new UnsupportedError(
      'WebGPU is not available here (no navigator.gpu); use a browser with WebGPU enabled',
      {
        argument: 'navigator.gpu',
        expected: 'a WebGPU implementation',
      },
    );
  }
  pinnedInstances.add(gpu);
  try {
    const adapter = await gpu.requestAdapter({
      powerPreference: options.powerPreference ?? 'high-performance',
    });
    if (adapter === null) {
      throw new BackendError(
        'webgpu',
        environment === 'node'
          ? 'no WebGPU adapter: install a Vulkan driver (a GPU driver, or a CPU one such as Mesa lavapipe; see .ci/install-webgpu-driver.sh)'
          : 'no WebGPU adapter: enable WebGPU in this browser',
        { argument: 'adapter', expected: 'a GPUAdapter', actual: null },
      );
    }
    const wanted: [GPUFeatureName, boolean][] = [
      ['shader-f16', options.shaderF16 ?? true],
      ['subgroups' as GPUFeatureName, options.subgroups ?? true],
      ['timestamp-query', options.timestampQuery ?? true],
    ];
    const requiredFeatures = wanted
      .filter(([name, on]) => on && adapter.features.has(name))
      .map(([name]) => name);
    const limits = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxComputeWorkgroupStorageSize: Math.min(
        limits.maxComputeWorkgroupStorageSize,
        options.maxWorkgroupStorageBytes ?? 48 * 1024,
      ),
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeInvocationsPerWorkgroup: Math.min(limits.maxComputeInvocationsPerWorkgroup, 256),
      maxComputeWorkgroupSizeX: Math.min(limits.maxComputeWorkgroupSizeX, 256),
    };
    const device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits,
      ...(options.label === undefined ? {} : { label: options.label }),
    });
    const description = describeAdapter(adapter.info);
    let disposed = false;
    return {
      device,
      adapter,
      environment,
      description,
      gpu,
      get disposed() {
        return disposed;
      },
      dispose() {
        if (disposed) return;
        disposed = true;
        device.destroy();
        pinnedInstances.delete(gpu);
      },
    };
  } catch (error) {
    pinnedInstances.delete(gpu);
    if (error instanceof BackendError || error instanceof UnsupportedError) throw error;
    throw new BackendError('webgpu', `could not create a WebGPU device: ${String(error)}`, { cause: error });
  }
}
