import type { PlanStrategy } from '@deft/core';
import { formatBytes, formatMicroseconds, formatRatio } from '../format/format-number.js';
import { formatTable } from '../format/format-table.js';
import type { BenchRow } from './bench-result.js';

/** The bench table: one row per (workload, strategy), the workload named on its first row only. */
export function formatBenchTable(rows: readonly BenchRow[]): string {
  let previous = '';
  return formatTable(
    [
      { header: 'workload' },
      { header: 'strategy' },
      { header: 'time/layer', align: 'right' },
      { header: 'vs seq', align: 'right' },
      { header: 'KV read', align: 'right' },
      { header: 'unique KV', align: 'right' },
      { header: 'vs seq', align: 'right' },
      { header: 'read/unique', align: 'right' },
      { header: 'chunks', align: 'right' },
      { header: 'partials', align: 'right' },
      { header: 'planning', align: 'right' },
    ],
    rows.map((row) => {
      const name = row.workload === previous ? '' : row.workload;
      previous = row.workload;
      return [
        name,
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
      ];
    }),
  );
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
