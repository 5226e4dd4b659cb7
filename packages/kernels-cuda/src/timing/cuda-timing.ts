import { DisposedError, InvalidArgumentError, type KVStorage, type TreeAttentionArgs } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import type { CudaPreparedPlan } from '../backend/cuda-prepared-plan.js';
import type { CudaAddon } from '../native/load-addon.js';
import { callNative } from '../native/native-error.js';

/** A CUDA event on the backend's stream. */
export interface CudaEvent {
  /** Enqueues the event on the backend's stream. */
  record(): void;
  /** Waits for this event and returns the milliseconds since `start` was reached on the stream. */
  millisecondsSince(start: CudaEvent): number;
  dispose(): void;
}

/** A kernel that streams a fixed list of KV slots once (K and V of every KV head) and discards them. */
export interface CudaReadOnce {
  /** Slots streamed per run. */
  readonly numTokens: number;
  /**
   * Enqueues one pass over `layer`: `rows` (default) streams whole token rows spread over the device;
   * `heads` reads the same bytes as the attention kernels do, one CTA per KV head and token range (each
   * CTA reads `headDim` elements of K and V per token, strided by the row).
   */
  run(layer: number, layout?: 'rows' | 'heads'): void;
  dispose(): void;
}

/** Device copy bandwidth measured with CUDA events. */
export interface CopyBandwidth {
  /** Bytes copied per run (read + write traffic is twice this). */
  readonly bytes: number;
  /** Median run time, milliseconds. */
  readonly medianMilliseconds: number;
  /** `2 × bytes / median`: read plus written bytes per second, in GB/s (1e9). */
  readonly gigabytesPerSecond: number;
}

/** The fp16 tensor-core rate measured with CUDA events (mma.sync on registers, f32 accumulation). */
export interface TensorRate {
  /** Median run time, milliseconds. */
  readonly medianMilliseconds: number;
  /** Floating-point operations per second, in TFLOP/s (1e12). */
  readonly teraflops: number;
}

/** One attention CTA of a profiled launch: its task, where and when it ran. */
export interface CudaBlockRecord {
  /** Index into the schedule's tasks (costliest first). */
  readonly task: number;
  /** The KV head (of the task's query group) this CTA computed. */
  readonly kvHead: number;
  /** KV tokens and rows (query x head of the KV head's group) of the task. */
  readonly tokens: number;
  readonly rows: number;
  /** Multiprocessor the CTA ran on. */
  readonly multiprocessor: number;
  /** Start and end on the device's global timer, microseconds after the earliest CTA started. */
  readonly startMicroseconds: number;
  readonly endMicroseconds: number;
}

/** Where the time of one task-executor attention launch went, CTA by CTA (the merge launch is not included). */
export interface CudaBlockProfile {
  readonly blocks: readonly CudaBlockRecord[];
  /** From the earliest CTA start to the latest CTA end, microseconds. */
  readonly spanMicroseconds: number;
}

/**
 * Measurement helpers of a CUDA backend, all enqueued on its stream: events, an L2 flush, the
 * read-once floor kernel, a device copy and an empty kernel. For benchmarks; not part of the Backend contract.
 */
export interface CudaTiming {
  createEvent(): CudaEvent;
  /** Evicts the L2 cache by reading a buffer of at least `max(bytes, 256 MiB, 4 × L2)` (allocated once). */
  flushL2(bytes?: number): void;
  /** Prepares a read-once pass over `slots` of a storage of this backend (slots are checked against it). */
  createReadOnce(storage: KVStorage, slots: Int32Array): CudaReadOnce;
  /** Times `runs` device-to-device copies of `bytes` (after one warm-up); `kernel` uses the copy kernel. */
  measureCopyBandwidth(options?: { bytes?: number; runs?: number; kernel?: boolean }): CopyBandwidth;
  /** Enqueues an empty kernel (launch latency). */
  emptyKernel(): void;
  /**
   * Times the fp16 tensor-core rate: a kernel of register-only mma.sync m16n8k16 chains on every
   * multiprocessor (no memory traffic), the compute roof a matmul of this backend can approach.
   */
  measureTensorRate(options?: { runs?: number }): TensorRate;
  /**
   * Enqueues a kernel that holds the stream for `microseconds`: work enqueued behind it waits, so events
   * around that work time the GPU alone, and the host's enqueue cost can be timed apart from it.
   */
  holdStream(microseconds: number): void;
  /** Fills every K and V element of a storage of this backend with seeded uniform values in `[-1, 1)`. */
  fillKVStorage(storage: KVStorage, seed: number): void;
  /**
   * Runs one layer of tree attention (a plan of the `tasks` executor) with every attention CTA timed on
   * the device's global timer, waits for it and returns the records. Adds a barrier per CTA: for
   * finding where a launch's time goes, not for timing it.
   *
   * @throws InvalidArgumentError for the arguments `treeAttention` refuses, or a plan of the `units` executor.
   * @throws DisposedError once the backend or the plan is disposed.
   * @example
   * ```ts
   * const profile = backend.timing.profileTreeAttention({ storage, layer: 0, plan: prepared, q, out, scale });
   * const slowest = profile.blocks.reduce((a, b) => (b.endMicroseconds > a.endMicroseconds ? b : a));
   * ```
   */
  profileTreeAttention(args: TreeAttentionArgs): CudaBlockProfile;
}

/** @internal Builds the timing helpers over a context; `alive` throws once the backend is disposed. */
export function createCudaTiming(
  addon: CudaAddon,
  context: number,
  multiprocessors: number,
  alive: () => void,
  storageHandle: (storage: KVStorage) => number,
  profileAttention: (args: TreeAttentionArgs) => { prepared: CudaPreparedPlan; profile: Float64Array },
): CudaTiming {
  const createEvent = (): CudaEvent => {
    alive();
    const handle = callNative('createEvent', () => addon.createEvent(context));
    let disposed = false;
    const event: CudaEvent & { handle: number } = {
      handle,
      record() {
        alive();
        if (disposed) throw new DisposedError('CUDA event');
        callNative('recordEvent', () => addon.recordEvent(handle));
      },
      millisecondsSince(start) {
        alive();
        if (disposed) throw new DisposedError('CUDA event');
        const startHandle = (start as CudaEvent & { handle: number }).handle;
        return callNative('elapsedMilliseconds', () => addon.elapsedMilliseconds(startHandle, handle));
      },
      dispose() {
        if (disposed) return;
        disposed = true;
        addon.destroyEvent(handle);
      },
    };
    return event;
  };
  return {
    createEvent,
    flushL2(bytes = 0) {
      alive();
      callNative('flushL2', () => addon.flushL2(context, bytes));
    },
    profileTreeAttention(args) {
      const { prepared, profile } = profileAttention(args);
      const numKvHeads = prepared.shape.numKvHeads;
      const blocks: CudaBlockRecord[] = [];
      let span = 0;
      for (let block = 0; block < profile.length / 3; block++) {
        const task = Math.floor(block / numKvHeads);
        const endMicroseconds = profile[3 * block + 2]! / 1000;
        span = Math.max(span, endMicroseconds);
        blocks.push({
          task,
          kvHead: block % numKvHeads,
          tokens: prepared.tasks[4 * task + 1]!,
          rows: prepared.tasks[4 * task + 3]!,
          multiprocessor: profile[3 * block]!,
          startMicroseconds: profile[3 * block + 1]! / 1000,
          endMicroseconds,
        });
      }
      return { blocks, spanMicroseconds: span };
    },
    createReadOnce(storage, slots) {
      alive();
      const handle = storageHandle(storage);
      if (!(slots instanceof Int32Array)) {
        throw new InvalidArgumentError('slots must be an Int32Array', { argument: 'slots', actual: slots });
      }
      const list = callNative('createSlotList', () => addon.createSlotList(handle, slots));
      let disposed = false;
      return {
        numTokens: slots.length,
        run(layer, layout = 'rows') {
          alive();
          if (disposed) throw new DisposedError('read-once pass');
          if (layout !== 'rows' && layout !== 'heads') {
            throw new InvalidArgumentError("layout must be 'rows' or 'heads'", {
              argument: 'layout',
              expected: 'rows | heads',
              actual: layout,
            });
          }
          callNative('readOnce', () => addon.readOnce(handle, layer, list, layout === 'heads' ? 1 : 0));
        },
        dispose() {
          if (disposed) return;
          disposed = true;
          addon.freeSlotList(list);
        },
      };
    },
    measureCopyBandwidth(options = {}) {
      alive();
      const bytes = Math.ceil((options.bytes ?? 1 << 30) / 16) * 16;
      const runs = options.runs ?? 10;
      const source = callNative('allocate', () => addon.allocate(context, bytes));
      const target = callNative('allocate', () => addon.allocate(context, bytes));
      const start = createEvent();
      const end = createEvent();
      try {
        callNative('fillF32', () => addon.fillF32(source, 0, bytes / 4, 1.5));
        const times: number[] = [];
        for (let run = -1; run < runs; run++) {
          start.record();
          callNative('copyBuffer', () => addon.copyBuffer(target, source, bytes, options.kernel === true));
          end.record();
          const milliseconds = end.millisecondsSince(start);
          if (run >= 0) times.push(milliseconds);
        }
        times.sort((a, b) => a - b);
        const median = times[Math.floor(times.length / 2)]!;
        return { bytes, medianMilliseconds: median, gigabytesPerSecond: (2 * bytes) / (median * 1e6) };
      } finally {
        start.dispose();
        end.dispose();
        addon.freeBuffer(source);
        addon.freeBuffer(target);
      }
    },
    emptyKernel() {
      alive();
      callNative('emptyKernel', () => addon.emptyKernel(context));
    },
    measureTensorRate(options = {}) {
      alive();
      const runs = options.runs ?? 10;
      const blocks = multiprocessors * 8;
      const iterations = 4096;
      const start = createEvent();
      let end: CudaEvent | undefined;
      try {
        end = createEvent();
        const times: number[] = [];
        for (let run = -1; run < runs; run++) {
          start.record();
          callNative('mmaRate', () => addon.mmaRate(context, blocks, iterations));
          end.record();
          const milliseconds = end.millisecondsSince(start);
          if (run >= 0) times.push(milliseconds);
        }
        times.sort((a, b) => a - b);
        const median = times[Math.floor(times.length / 2)]!;
        // 8 warps per block, 8 chains per iteration, 2 * 16 * 8 * 16 FLOPs per mma.
        const flops = blocks * 8 * iterations * 8 * 4096;
        return { medianMilliseconds: median, teraflops: flops / (median * 1e9) };
      } finally {
        start.dispose();
        end?.dispose();
      }
    },
    holdStream(microseconds) {
      alive();
      if (!(Number.isFinite(microseconds) && microseconds >= 0 && microseconds <= 60e6)) {
        throw new InvalidArgumentError('microseconds must be in [0, 60e6]', {
          argument: 'microseconds',
          expected: '[0, 60e6]',
          actual: microseconds,
        });
      }
      callNative('spin', () => addon.spin(context, Math.round(microseconds * 1000)));
    },
    fillKVStorage(storage, seed) {
      alive();
      const handle = storageHandle(storage);
      assertInteger('seed', seed, 0);
      callNative('fillStorageUniform', () => addon.fillStorageUniform(handle, seed, -1, 1));
    },
  };
}
