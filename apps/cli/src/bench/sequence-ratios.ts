import type { BenchRow } from './bench-result.js';

/**
 * Adds to every row its ratios to the `sequence` row of the same workload (time: median over median;
 * KV bytes read over KV bytes read). Rows of a workload without a `sequence` row get `NaN`.
 */
export function withSequenceRatios(rows: readonly Omit<BenchRow, 'vsSequence'>[]): BenchRow[] {
  const baselines = new Map<string, Omit<BenchRow, 'vsSequence'>>();
  for (const row of rows) if (row.strategy === 'sequence') baselines.set(row.workload, row);
  return rows.map((row) => {
    const baseline = baselines.get(row.workload);
    return {
      ...row,
      vsSequence: {
        time:
          baseline === undefined
            ? Number.NaN
            : row.layerMicroseconds.median / baseline.layerMicroseconds.median,
        kvBytes: baseline === undefined ? Number.NaN : row.io.kvBytesRead / baseline.io.kvBytesRead,
      },
    };
  });
}
