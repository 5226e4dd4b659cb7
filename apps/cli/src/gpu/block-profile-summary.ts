import type { CudaBlockProfile, CudaBlockRecord } from '@deft/kernels-cuda';

/** The kernel a prepared plan runs (`CudaScheduleSummary.kernel`). */
type CudaKernelName = 'mma' | 'wgmma' | 'scalar';

/** Tokens per KV tile of the CUDA task kernels. */
const TILE_TOKENS = 64;

/** CTAs of one task body: their count, times and a least-squares fit of time against KV tiles. */
export interface BlockKindSummary {
  /**
   * `wgmma` (tasks of 33+ rows on the Hopper kernel), `mma-1` / `mma-2` / `mma-3` (16-row query tiles of the
   * mma.sync bodies) or `scalar` (CUDA cores).
   */
  readonly kind: string;
  readonly blocks: number;
  readonly meanMicroseconds: number;
  readonly maxMicroseconds: number;
  /** Fit `time = fixed + perTile x tiles` over this kind's CTAs (NaN with fewer than two tile counts). */
  readonly fixedMicroseconds: number;
  readonly perTileMicroseconds: number;
}

/** Where one attention launch's time went (see `CudaTiming.profileTreeAttention`). */
export interface BlockProfileSummary {
  /** Earliest CTA start to latest CTA end, µs. */
  readonly spanMicroseconds: number;
  /** Latest CTA start, µs: above a few µs, some CTAs waited for a slot (a second wave). */
  readonly lastStartMicroseconds: number;
  /** Sum of CTA durations / (span x multiprocessors): CTAs resident per multiprocessor on average. */
  readonly meanResidentBlocks: number;
  readonly kinds: readonly BlockKindSummary[];
  /** The CTA that ended last (absent when the launch had no CTA). */
  readonly last?: CudaBlockRecord;
  /** Every CTA as `[task, kvHead, multiprocessor, start µs, end µs]`, for offline analysis. */
  readonly blocks: readonly (readonly number[])[];
}

function kindOf(record: CudaBlockRecord, kernel: CudaKernelName): string {
  if (kernel === 'scalar') return 'scalar';
  if (kernel === 'wgmma' && record.rows >= 33) return 'wgmma';
  return `mma-${Math.min(3, Math.ceil(record.rows / 16))}`;
}

function fit(points: readonly (readonly [number, number])[]): { fixed: number; slope: number } {
  const n = points.length;
  let sumX = 0;
  let sumY = 0;
  for (const [x, y] of points) {
    sumX += x;
    sumY += y;
  }
  const meanX = sumX / n;
  const meanY = sumY / n;
  let covariance = 0;
  let variance = 0;
  for (const [x, y] of points) {
    covariance += (x - meanX) * (y - meanY);
    variance += (x - meanX) ** 2;
  }
  if (variance === 0) return { fixed: Number.NaN, slope: Number.NaN };
  const slope = covariance / variance;
  return { fixed: meanY - slope * meanX, slope };
}

const round = (value: number): number => Math.round(value * 100) / 100;

/**
 * Summarises a block profile by task body: how long each kind of CTA took, and what a KV tile and a CTA's
 * fixed cost are on the device (the task schedule's cost model, measured).
 */
export function summarizeBlockProfile(
  profile: CudaBlockProfile,
  options: { readonly kernel: CudaKernelName; readonly multiprocessors: number },
): BlockProfileSummary {
  const byKind = new Map<string, CudaBlockRecord[]>();
  let busy = 0;
  let lastStart = 0;
  let last: CudaBlockRecord | undefined;
  for (const record of profile.blocks) {
    const kind = kindOf(record, options.kernel);
    let list = byKind.get(kind);
    if (list === undefined) {
      list = [];
      byKind.set(kind, list);
    }
    list.push(record);
    busy += record.endMicroseconds - record.startMicroseconds;
    lastStart = Math.max(lastStart, record.startMicroseconds);
    if (last === undefined || record.endMicroseconds > last.endMicroseconds) last = record;
  }
  const kinds = [...byKind.entries()].sort().map(([kind, records]): BlockKindSummary => {
    const durations = records.map((record) => record.endMicroseconds - record.startMicroseconds);
    const { fixed, slope } = fit(
      records.map((record, index) => [Math.ceil(record.tokens / TILE_TOKENS), durations[index]!] as const),
    );
    return {
      kind,
      blocks: records.length,
      meanMicroseconds: round(durations.reduce((sum, value) => sum + value, 0) / durations.length),
      maxMicroseconds: round(Math.max(...durations)),
      fixedMicroseconds: round(fixed),
      perTileMicroseconds: round(slope),
    };
  });
  return {
    spanMicroseconds: round(profile.spanMicroseconds),
    lastStartMicroseconds: round(lastStart),
    meanResidentBlocks:
      profile.spanMicroseconds > 0 ? round(busy / (profile.spanMicroseconds * options.multiprocessors)) : 0,
    kinds,
    ...(last === undefined ? {} : { last }),
    blocks: profile.blocks.map((record) => [
      record.task,
      record.kvHead,
      record.multiprocessor,
      round(record.startMicroseconds),
      round(record.endMicroseconds),
    ]),
  };
}

/** One line: span, residency and each kind's mean / max / per-tile / fixed µs. */
export function formatBlockProfile(summary: BlockProfileSummary): string {
  const kinds = summary.kinds
    .map(
      (kind) =>
        `${kind.kind} x${kind.blocks} mean ${kind.meanMicroseconds} max ${kind.maxMicroseconds} (${kind.fixedMicroseconds} + ${kind.perTileMicroseconds}/tile)`,
    )
    .join('; ');
  const { last } = summary;
  if (last === undefined) return 'no attention CTA (every query is written by the merge)';
  return `span ${summary.spanMicroseconds} µs, last start ${summary.lastStartMicroseconds}, ${summary.meanResidentBlocks} CTAs/SM; ${kinds}; last: task ${last.task} (${last.tokens} tokens x ${last.rows} rows) ${last.startMicroseconds.toFixed(1)}-${last.endMicroseconds.toFixed(1)}`;
}
