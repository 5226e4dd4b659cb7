const QUERY_RESOLVE = 0x0200;
const COPY_SRC = 0x0004;
const COPY_DST = 0x0008;
const MAP_READ = 0x0001;

/** Timestamp writes of one compute pass. */
export interface PassTimestamps {
  readonly querySet: GPUQuerySet;
  readonly beginningOfPassWriteIndex: number;
  readonly endOfPassWriteIndex: number;
}

/**
 * Times compute passes with timestamp queries: `encode(encoder, timestamps)` must begin exactly one
 * compute pass with the given timestamp writes. Passes are encoded `batch` to a command buffer, back to
 * back, until at least `minRuns` were timed and `budgetMilliseconds` spent (at most `maxRuns`).
 *
 * @returns Duration of each pass in microseconds (GPU time from the pass's start to its end).
 */
export async function timePasses(
  device: GPUDevice,
  encode: (encoder: GPUCommandEncoder, timestamps: PassTimestamps) => void,
  options: {
    readonly minRuns: number;
    readonly maxRuns: number;
    readonly budgetMilliseconds: number;
    readonly batch?: number;
  },
): Promise<number[]> {
  const batch = options.batch ?? 16;
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * batch });
  const resolve = device.createBuffer({ size: 16 * batch, usage: QUERY_RESOLVE | COPY_SRC });
  const durations: number[] = [];
  const started = performance.now();
  try {
    while (
      durations.length < options.minRuns ||
      (durations.length < options.maxRuns && performance.now() - started < options.budgetMilliseconds)
    ) {
      const read = device.createBuffer({ size: 16 * batch, usage: MAP_READ | COPY_DST });
      const encoder = device.createCommandEncoder();
      for (let run = 0; run < batch; run++) {
        encode(encoder, { querySet, beginningOfPassWriteIndex: 2 * run, endOfPassWriteIndex: 2 * run + 1 });
      }
      encoder.resolveQuerySet(querySet, 0, 2 * batch, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, read, 0, 16 * batch);
      device.queue.submit([encoder.finish()]);
      await read.mapAsync(MAP_READ);
      const stamps = new BigUint64Array(read.getMappedRange().slice(0));
      read.destroy();
      for (let run = 0; run < batch; run++) {
        const begin = stamps[2 * run]!;
        const end = stamps[2 * run + 1]!;
        // A driver may report 0 for a timestamp it could not take; such runs are dropped.
        if (begin > 0n && end > begin) durations.push(Number(end - begin) / 1000);
      }
      if (durations.length === 0 && performance.now() - started > options.budgetMilliseconds) break;
    }
  } finally {
    querySet.destroy();
    resolve.destroy();
  }
  return durations;
}

/**
 * Fenced wall time: encodes `count` copies of the work into one command buffer, submits it and waits
 * for the queue, `repeats` times; returns the median wall time per copy in microseconds (includes the
 * gaps between dispatches and the submit-to-done latency spread over `count`).
 */
export async function fencedWallMicroseconds(
  device: GPUDevice,
  encode: (encoder: GPUCommandEncoder) => void,
  count: number,
  repeats: number,
): Promise<number> {
  const samples: number[] = [];
  for (let repeat = 0; repeat < repeats; repeat++) {
    const started = performance.now();
    const encoder = device.createCommandEncoder();
    for (let index = 0; index < count; index++) encode(encoder);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    samples.push(((performance.now() - started) * 1000) / count);
  }
  return median(samples);
}

/** Median of a non-empty list (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
