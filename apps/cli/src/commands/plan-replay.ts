import type { PlanStrategy } from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import type { CliIo } from '../cli/cli-io.js';
import type { OptionValues } from '../cli/parse-command-line.js';
import { createProgress } from '../cli/progress.js';
import { formatBytes, formatMicroseconds, formatRatio } from '../format/format-number.js';
import { formatTable } from '../format/format-table.js';
import { buildWorkload } from '../workloads/build-workload.js';
import { resolveReplay } from '../workloads/resolve-workload.js';
import { applyWorkloadOverrides } from './workload-options.js';

/** Totals of one strategy over every step of a replay. */
interface ReplayTotals {
  strategy: PlanStrategy;
  kvBytesRead: number;
  uniqueKvBytes: number;
  partialBytes: number;
  maskBytes: number;
  chunks: number;
  partials: number;
  planMicroseconds: number[];
}

/**
 * `deft plan --replay`: plans every step of a replayed record with each strategy (one planner run per
 * step) and prints the summed IO model and the planning time per step (median, max, total).
 */
export function planReplay(
  name: string,
  strategies: readonly PlanStrategy[],
  values: OptionValues,
  io: CliIo,
): number {
  const replay = resolveReplay(name);
  const totals: ReplayTotals[] = strategies.map((strategy) => ({
    strategy,
    kvBytesRead: 0,
    uniqueKvBytes: 0,
    partialBytes: 0,
    maskBytes: 0,
    chunks: 0,
    partials: 0,
    planMicroseconds: [],
  }));
  const progress = createProgress(io, replay.count, io.stderrIsTerminal);
  let steps = 0;
  let maxQueries = 0;
  let maxTreeTokens = 0;
  let sequenceBytes = 0;
  for (const { step, workload: recorded } of replay.steps()) {
    progress.start(`step ${step}`);
    const workload = applyWorkloadOverrides(recorded, values);
    const built = buildWorkload(workload);
    steps++;
    maxQueries = Math.max(maxQueries, built.queries.nodes.length);
    maxTreeTokens = Math.max(maxTreeTokens, built.tokenSlots.length);
    for (const total of totals) {
      const before = performance.now();
      const plan = planTreeAttention(built.view, built.queries, {
        strategy: total.strategy,
        shape: built.shape,
      });
      total.planMicroseconds.push((performance.now() - before) * 1000);
      total.kvBytesRead += plan.io.kvBytesRead;
      total.uniqueKvBytes += plan.io.uniqueKvBytes;
      total.partialBytes += plan.io.partialBytes;
      total.maskBytes += plan.io.maskBytes;
      total.chunks += plan.numChunks;
      total.partials += plan.numPartials;
      if (total.strategy === 'sequence') sequenceBytes += plan.io.kvBytesRead;
    }
    progress.done('planned');
  }
  progress.finish();
  const rows = totals.map((total) => {
    const sorted = [...total.planMicroseconds].sort((a, b) => a - b);
    return {
      strategy: total.strategy,
      kvBytesRead: total.kvBytesRead,
      uniqueKvBytes: total.uniqueKvBytes,
      kvReadToUnique: total.kvBytesRead / total.uniqueKvBytes,
      kvReadToSequence: sequenceBytes > 0 ? total.kvBytesRead / sequenceBytes : Number.NaN,
      maskBytes: total.maskBytes,
      partialBytes: total.partialBytes,
      chunks: total.chunks,
      partials: total.partials,
      planMicroseconds: {
        median: sorted[Math.floor(sorted.length / 2)] ?? 0,
        max: sorted[sorted.length - 1] ?? 0,
        total: sorted.reduce((sum, value) => sum + value, 0),
      },
    };
  });
  if (values.json === true) {
    io.stdout(
      `${JSON.stringify({ replay: replay.name, steps, maxQueries, maxTreeTokens, plans: rows }, null, 2)}\n`,
    );
    return 0;
  }
  io.stdout(
    `replay ${replay.name}: ${steps} steps, up to ${maxQueries} queries and ${maxTreeTokens} tree tokens; ` +
      'KV bytes summed over every step, per layer; one planner run per step\n\n',
  );
  io.stdout(
    formatTable(
      [
        { header: 'strategy' },
        { header: 'Σ KV read', align: 'right' },
        { header: 'Σ unique KV', align: 'right' },
        { header: 'read/unique', align: 'right' },
        { header: 'vs sequence', align: 'right' },
        { header: 'Σ partial bytes', align: 'right' },
        { header: 'planning median', align: 'right' },
        { header: 'max', align: 'right' },
        { header: 'total', align: 'right' },
      ],
      rows.map((row) => [
        row.strategy,
        formatBytes(row.kvBytesRead),
        formatBytes(row.uniqueKvBytes),
        formatRatio(row.kvReadToUnique),
        formatRatio(row.kvReadToSequence),
        formatBytes(row.partialBytes),
        formatMicroseconds(row.planMicroseconds.median),
        formatMicroseconds(row.planMicroseconds.max),
        formatMicroseconds(row.planMicroseconds.total),
      ]),
    ),
  );
  return 0;
}
