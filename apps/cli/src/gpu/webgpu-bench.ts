import type { PlanStrategy, TreeAttentionPlan } from '@deft/core';
import { directTreeAttention } from '@deft/kernels-cpu/reference';
import {
  createWebGpuBackend,
  requestWebGpuDevice,
  type WebGpuBackend,
  type WebGpuDeviceHandle,
} from '@deft/kernels-webgpu';
import { planTreeAttention } from '@deft/planner';
import { ATTENTION_TOLERANCE, relativeError } from '@deft/testing';
import { randomAttentionInputs, scatterToSlots } from '../attention/random-inputs.js';
import type { BenchRow } from '../bench/bench-result.js';
import type { GpuBenchOptions, GpuBenchOutcome } from '../bench/gpu-bench-types.js';
import { withSequenceRatios } from '../bench/sequence-ratios.js';
import { formatMicroseconds } from '../format/format-number.js';
import { type BuiltWorkload, buildWorkload } from '../workloads/build-workload.js';
import { measureWebGpuFloors, type WebGpuFloors } from './webgpu-floors.js';
import { fencedWallMicroseconds, median, timePasses } from './webgpu-timing.js';

/** Options of {@link runWebGpuBench} beyond what `deft bench` passes. */
export interface WebGpuBenchSettings {
  /** Run on this device instead of requesting one (the bench never destroys it). */
  readonly device?: GPUDevice;
  /** Queries per workload checked against the float64 reference before timing (default 16, spread evenly). */
  readonly checkQueries?: number;
  /** Bytes of the copy-bandwidth buffer (default 256 MiB, capped by the device's binding size). */
  readonly copyBufferBytes?: number;
  /** Workgroups of the FMA-rate kernel (default 8192). */
  readonly fmaWorkgroups?: number;
  /** Timed runs per (workload, strategy) at least (default `max(repetitions, 30)`). */
  readonly minRuns?: number;
  /** Time spent timing one (workload, strategy) at most, in ms, once `minRuns` is reached (default 300). */
  readonly budgetMilliseconds?: number;
  /** Extra `deft-flatten` plans with these explicit chunk sizes (reported as rows with `extra.chunkSize`). */
  readonly chunkSizes?: readonly number[];
  /** Workgroups the backend aims for per attention dispatch (see `createWebGpuBackend`). */
  readonly targetWorkgroups?: number;
}

/** The correctness check of one (workload, strategy) before it is timed. */
export interface WebGpuBenchCheck {
  readonly workload: string;
  readonly strategy: PlanStrategy;
  readonly chunkSize?: number;
  readonly checkedQueries: number;
  readonly relativeError: number;
  readonly tolerance: number;
  readonly passed: boolean;
}

/** What {@link runWebGpuBench} returns: `deft bench`'s outcome plus the floors and checks. */
export interface WebGpuBenchOutcome extends GpuBenchOutcome {
  readonly floors: WebGpuFloors;
  readonly checks: readonly WebGpuBenchCheck[];
  /** `"timestamp-query"` (GPU time of each layer's compute pass) or `"fenced wall time"`. */
  readonly timing: string;
  /** Kernel settings per workload shape, e.g. tile sizes. */
  readonly kernels: Readonly<Record<string, unknown>>;
  readonly features: Readonly<Record<string, unknown>>;
}

/** `4 · headDim` FLOPs per (query head, visible token): `q · k` and `p · v`, an FMA counting 2. */
export function attentionFlops(built: BuiltWorkload): number {
  const { view, queries, shape } = built;
  let visible = 0;
  for (let index = 0; index < queries.nodes.length; index++) {
    visible += queries.positions[index]! + 1;
    for (let node = view.parent[queries.nodes[index]!]!; node !== -1; node = view.parent[node]!)
      visible += view.tokenCount[node]!;
  }
  return visible * shape.numHeads * 4 * shape.headDim;
}

function evenlySpaced(count: number, total: number): number[] {
  if (count >= total) return Array.from({ length: total }, (_, index) => index);
  return Array.from({ length: count }, (_, index) => Math.floor(((index + 0.5) * total) / count));
}

interface Variant {
  readonly strategy: PlanStrategy;
  readonly chunkSize?: number;
}

/**
 * The WebGPU bench of `deft bench --backend webgpu`: for each workload (one layer, KV in shuffled
 * pages), first checks every strategy against the float64 reference on a spread of queries (outputs
 * poisoned with NaN before the run), then times it: GPU time of each layer's compute pass from
 * timestamp queries (median of many runs; fenced wall time when the device has no timestamps), and in
 * the same process the device's floors: copy bandwidth of a `vec4<u32>` copy kernel and the f32 rate
 * of a register-only FMA kernel. Each row reports GB/s on unique KV bytes, the memory floor
 * (`uniqueKvBytes / bandwidth`), the compute floor (attention FLOPs / FMA rate), their max, the ratio
 * to it, and the speedup over `sequence` against `sqrt(IO ratio)`.
 *
 * @throws BackendError when no WebGPU device can be created; Error when a check fails.
 * @example
 * ```ts
 * const outcome = await runWebGpuBench({ workloads, strategies: PLAN_STRATEGIES, repetitions: 30, progress });
 * ```
 */
export async function runWebGpuBench(
  options: GpuBenchOptions & WebGpuBenchSettings,
): Promise<WebGpuBenchOutcome> {
  let handle: WebGpuDeviceHandle | undefined;
  let device = options.device;
  let description = 'WebGPU device';
  if (device === undefined) {
    // Full-precision timestamps: Dawn quantizes them by default.
    handle = await requestWebGpuDevice({ dawnOptions: ['disable-dawn-features=timestamp_quantization'] });
    device = handle.device;
    description = handle.description;
  }
  const backend = createWebGpuBackend({
    device,
    ...(options.targetWorkgroups === undefined ? {} : { targetWorkgroups: options.targetWorkgroups }),
  });
  if (handle === undefined) description = backend.capabilities.device;
  try {
    return await benchOnBackend(backend, description, options);
  } finally {
    backend.dispose();
    handle?.dispose();
  }
}

async function benchOnBackend(
  backend: WebGpuBackend,
  description: string,
  options: GpuBenchOptions & WebGpuBenchSettings,
): Promise<WebGpuBenchOutcome> {
  const device = backend.device;
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const floorSettings = {
    copyBufferBytes: Math.min(options.copyBufferBytes ?? 256 * 1024 * 1024, limit),
    fmaWorkgroups: options.fmaWorkgroups ?? 8192,
    runs: 20,
  };
  // Floors are measured before the attention runs and again after them; the better of the two is used.
  const floorsBefore = await measureWebGpuFloors(device, floorSettings);
  const useTimestamps = backend.features.timestampQuery;
  const minRuns = options.minRuns ?? Math.max(options.repetitions, 30);
  const budget = options.budgetMilliseconds ?? 300;
  const rows: (Omit<BenchRow, 'vsSequence'> & { extra: Record<string, number> })[] = [];
  const checks: WebGpuBenchCheck[] = [];
  const kernels: Record<string, unknown> = {};
  const variants: Variant[] = [
    ...options.strategies.map((strategy) => ({ strategy })),
    ...(options.chunkSizes ?? []).map((chunkSize) => ({ strategy: 'deft-flatten' as const, chunkSize })),
  ];

  for (const workload of options.workloads) {
    const built = buildWorkload(workload);
    const inputs = randomAttentionInputs(built);
    const numQueries = built.queries.nodes.length;
    const { numHeads, numKvHeads, headDim } = built.shape;
    const rowValues = numHeads * headDim;
    kernels[`${numHeads}/${numKvHeads}/${headDim} ${built.shape.kvDtype}`] = backend.attentionKernelConfig(
      built.shape,
    );

    // The reference on a spread of queries (the float64 reference is slow on purpose).
    const checked = evenlySpaced(options.checkQueries ?? 16, numQueries);
    const expected = directTreeAttention({
      view: built.view,
      queries: {
        nodes: Int32Array.from(checked, (index) => built.queries.nodes[index]!),
        positions: Int32Array.from(checked, (index) => built.queries.positions[index]!),
      },
      q: Float32Array.from(
        checked.flatMap((index) => [...inputs.q.subarray(index * rowValues, (index + 1) * rowValues)]),
      ),
      k: scatterToSlots(built, inputs.k),
      v: scatterToSlots(built, inputs.v),
      numHeads,
      numKvHeads,
      headDim,
      scale: inputs.scale,
    });

    const storage = backend.createKVStorage({
      numLayers: 1,
      numPages: built.numSlots / workload.pageSize,
      pageSize: workload.pageSize,
      numKvHeads,
      headDim,
      dtype: built.shape.kvDtype,
    });
    const q = backend.createTensor({ shape: [numQueries, numHeads, headDim], dtype: 'f32' });
    const out = backend.createTensor({ shape: [numQueries, numHeads, headDim], dtype: 'f32' });
    const flops = attentionFlops(built);
    try {
      backend.writeKV(storage, 0, built.tokenSlots, inputs.k, inputs.v);
      backend.uploadTensor(q, inputs.q);
      const poison = new Float32Array(numQueries * rowValues).fill(Number.NaN);
      for (const variant of variants) {
        const label = `${workload.name} ${variant.strategy}${variant.chunkSize === undefined ? '' : ` chunk ${variant.chunkSize}`}`;
        options.progress.start(label);
        const planStarted = performance.now();
        const planSamples: number[] = [];
        let plan: TreeAttentionPlan | undefined;
        while (
          planSamples.length < 5 ||
          (planSamples.length < 100 && performance.now() - planStarted < 100)
        ) {
          const before = performance.now();
          plan = planTreeAttention(built.view, built.queries, {
            strategy: variant.strategy,
            shape: built.shape,
            ...(variant.chunkSize === undefined ? {} : { chunkSize: variant.chunkSize }),
          });
          planSamples.push((performance.now() - before) * 1000);
        }
        const prepared = backend.preparePlan(plan!);
        try {
          const args = { storage, layer: 0, plan: prepared, q, out, scale: inputs.scale };
          backend.uploadTensor(out, poison);
          backend.treeAttention(args);
          const actual = await backend.downloadTensor(out);
          const picked = Float32Array.from(
            checked.flatMap((index) => [...actual.subarray(index * rowValues, (index + 1) * rowValues)]),
          );
          const error = relativeError(picked, expected);
          const tolerance = ATTENTION_TOLERANCE[built.shape.kvDtype];
          checks.push({
            workload: workload.name,
            strategy: variant.strategy,
            ...(variant.chunkSize === undefined ? {} : { chunkSize: variant.chunkSize }),
            checkedQueries: checked.length,
            relativeError: error,
            tolerance,
            passed: error < tolerance,
          });
          if (!(error < tolerance)) {
            options.progress.done(`check FAILED (relative error ${error})`);
            continue;
          }

          // Warm-up (clocks, caches) before anything is timed.
          await fencedWallMicroseconds(
            device,
            (encoder) => backend.encodeTreeAttention(encoder, args),
            Math.min(8, minRuns),
            1,
          );
          const layerTimes = useTimestamps
            ? await timePasses(
                device,
                (encoder, timestamps) => backend.encodeTreeAttention(encoder, args, timestamps),
                {
                  minRuns,
                  maxRuns: Math.max(minRuns, 1000),
                  budgetMilliseconds: budget,
                  batch: Math.min(16, minRuns),
                },
              )
            : [];
          const wall = await fencedWallMicroseconds(
            device,
            (encoder) => backend.encodeTreeAttention(encoder, args),
            Math.min(32, minRuns),
            3,
          );
          const times = layerTimes.length > 0 ? layerTimes : [wall];
          const sorted = [...times].sort((a, b) => a - b);
          const layerMedian = median(sorted);
          rows.push({
            workload: workload.name,
            strategy: variant.strategy,
            numChunks: plan!.numChunks,
            numPartials: plan!.numPartials,
            io: plan!.io,
            planMicroseconds: median(planSamples),
            layerMicroseconds: { median: layerMedian, min: sorted[0]!, runs: sorted.length },
            extra: {
              ...(variant.chunkSize === undefined ? {} : { chunkSize: variant.chunkSize }),
              fencedWallMicroseconds: wall,
              uniqueGigabytesPerSecond: plan!.io.uniqueKvBytes / (layerMedian * 1e-6) / 1e9,
              attentionFlops: flops,
              relativeError: error,
            },
          });
          options.progress.done(formatMicroseconds(layerMedian));
        } finally {
          prepared.dispose();
        }
      }
    } finally {
      storage.dispose();
      q.dispose();
      out.dispose();
    }
  }
  await backend.synchronize();
  const floorsAfter = await measureWebGpuFloors(device, floorSettings);
  const floors: WebGpuFloors = {
    ...floorsBefore,
    copyBytesPerSecond: Math.max(floorsBefore.copyBytesPerSecond, floorsAfter.copyBytesPerSecond),
    fmaFlopsPerSecond: Math.max(floorsBefore.fmaFlopsPerSecond, floorsAfter.fmaFlopsPerSecond),
  };
  const floorNote = `floors before / after the runs: copy ${(floorsBefore.copyBytesPerSecond / 1e12).toFixed(2)} / ${(floorsAfter.copyBytesPerSecond / 1e12).toFixed(2)} TB/s, FMA ${(floorsBefore.fmaFlopsPerSecond / 1e12).toFixed(1)} / ${(floorsAfter.fmaFlopsPerSecond / 1e12).toFixed(1)} TFLOP/s`;
  for (const row of rows) {
    const extra = row.extra!;
    const memoryFloor = (row.io.uniqueKvBytes / floors.copyBytesPerSecond) * 1e6;
    const computeFloor = ((extra.attentionFlops ?? 0) / floors.fmaFlopsPerSecond) * 1e6;
    const floor = Math.max(memoryFloor, computeFloor);
    Object.assign(extra, {
      memoryFloorMicroseconds: memoryFloor,
      computeFloorMicroseconds: computeFloor,
      floorMicroseconds: floor,
      ratioToFloor: row.layerMicroseconds.median / floor,
    });
  }

  // Speedup over the sequence baseline of the same workload, against sqrt(IO ratio).
  const finalRows = withSequenceRatios(rows).map((row) => ({
    ...row,
    extra: {
      ...row.extra,
      speedupVsSequence: 1 / row.vsSequence.time,
      targetSpeedup: Math.sqrt(1 / row.vsSequence.kvBytes),
    },
  }));
  const notes = [
    `timing: ${useTimestamps ? "GPU time of each layer's compute pass (timestamp queries), median" : 'fenced wall time per layer'}`,
    `floors measured in this run: copy ${(floors.copyBytesPerSecond / 1e12).toFixed(2)} TB/s (vec4<u32> copy, read + write bytes), f32 FMA ${(floors.fmaFlopsPerSecond / 1e12).toFixed(1)} TFLOP/s`,
    floorNote,
    `features: shader-f16 ${backend.features.shaderF16}, subgroups ${backend.features.subgroups} (min size ${backend.features.subgroupMinSize}), workgroup memory ${backend.features.workgroupStorageBytes} B`,
  ];
  return {
    device: description,
    rows: finalRows,
    notes,
    floors,
    checks,
    timing: floors.timing,
    kernels,
    features: { ...backend.features },
  };
}
