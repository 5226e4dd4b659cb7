import type { PlanStrategy } from '@deft/core';
import { formatBytes, formatMicroseconds, formatRatio } from '../format/format-number.js';
import { formatTable } from '../format/format-table.js';
import type { BenchRow } from './bench-result.js';

/** What the bench table's columns mean, printed above it (wrapped to the terminal width by the caller). */
export const BENCH_TABLE_LEGEND =
  'per layer: time is the median per layer, KV read and unique are the bytes of K and V read and held; ' +
  '"vs seq" is the ratio to the sequence baseline of the same workload (time, then KV read); ' +
  'reuse = KV read / unique; plan = planning time';

/**
 * The bench table: each workload on a line of its own, then one indented row per strategy, so the rows
 * fit 100 columns whatever the workload names (`tot:sorting128:0:1495` is as wide as a column).
 */
export function formatBenchTable(rows: readonly BenchRow[]): string {
  const table = formatTable(
    [
      { header: 'strategy' },
      { header: 'time', align: 'right' },
      { header: 'vs seq', align: 'right' },
      { header: 'KV read', align: 'right' },
      { header: 'unique', align: 'right' },
      { header: 'vs seq', align: 'right' },
      { header: 'reuse', align: 'right' },
      { header: 'chunks', align: 'right' },
      { header: 'partials', align: 'right' },
      { header: 'plan', align: 'right' },
    ],
    rows.map((row) => [
      row.strategy,
      formatMicroseconds(row.layerMicroseconds.median),
      formatRatio(row.vsSequence.time),
      formatBytes(row.io.kvBytesRead),
      formatBytes(row.io.uniqueKvBytes),
      formatRatio(row.vsSequence.kvBytes),
      formatRatio(row.io.kvBytesRead / row.io.uniqueKvBytes),
      String(row.numChunks),
      String(row.numPartials),
      formatMicroseconds(row.planMicroseconds),
    ]),
  ).split('\n');
  const lines = table.slice(0, 2).map((line) => `  ${line}`);
  let previous: string | undefined;
  rows.forEach((row, index) => {
    if (row.workload !== previous) lines.push(row.workload);
    previous = row.workload;
    lines.push(`  ${table[index + 2]}`);
  });
  return `${lines.join('\n')}\n`;
}

/** Geometric means over workloads of each strategy's ratios to the sequence baseline, one line per strategy. */
export function formatBenchSummary(rows: readonly BenchRow[], strategies: readonly PlanStrategy[]): string {
  const lines: string[] = [];
  for (const strategy of strategies) {
    if (strategy === 'sequence') continue;
    const own = rows.filter((row) => row.strategy === strategy && Number.isFinite(row.vsSequence.kvBytes));
    if (own.length === 0) continue;
    const mean = (values: number[]) =>
      Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length);
    const bytes = mean(own.map((row) => row.vsSequence.kvBytes));
    const times = own
      .map((row) => row.vsSequence.time)
      .filter((value) => Number.isFinite(value) && value > 0);
    lines.push(
      `  ${strategy.padEnd(16)} KV bytes ${formatRatio(bytes)}` +
        (times.length > 0 ? `, time ${formatRatio(mean(times))}` : '') +
        ` of sequence (geometric mean over ${own.length} workloads)`,
    );
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
