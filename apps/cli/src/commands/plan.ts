import { PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { planWorkload } from '../attention/plan-workload.js';
import type { CliIo } from '../cli/cli-io.js';
import { choiceOption, parseCommandLine, requiredStringOption } from '../cli/parse-command-line.js';
import { formatBytes, formatMicroseconds, formatRatio } from '../format/format-number.js';
import { formatTable } from '../format/format-table.js';
import { buildWorkload } from '../workloads/build-workload.js';
import { describeWorkload, summarizeWorkload } from '../workloads/workload-summary.js';
import { planReplay } from './plan-replay.js';
import { WORKLOAD_HELP, WORKLOAD_OPTIONS, workloadFromOptions } from './workload-options.js';

const HELP = `Usage: deft plan --workload W [--strategy S] [--page-size N] [--step N] [--replay] [--json]

Plans one decoding step of tree attention and prints the plan's statistics and IO model per layer:
chunks, partial results, unique KV bytes (the floor), KV bytes the plan reads, their ratio, the ratio
to the sequence baseline (each query reading its whole path), mask and partial-result bytes, and the
planning time (median of repeated runs).

Options:
${WORKLOAD_HELP}
  -s, --strategy S   ${PLAN_STRATEGIES.join(', ')} (default: all)
  --replay           plan every step of a replayed record (tot:TASK[:TREE], sd:appsN[:RUN]) and
                     print the IO model summed over the steps and the planning time per step
  --json             print JSON instead of a table
  -h, --help         show this help

Examples:
  pnpm deft plan --workload few-shot-b20
  pnpm deft plan --workload tot:docmerge:0 --strategy deft-flatten --json
  pnpm deft plan --workload tot:docmerge:0 --replay
`;

/** `deft plan`: plan statistics and the IO model of one workload; resolves to the exit code. */
export async function runPlanCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { help, values } = parseCommandLine('plan', argv, {
    ...WORKLOAD_OPTIONS,
    strategy: { type: 'string', short: 's' },
    replay: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const strategy = choiceOption(values, 'strategy', PLAN_STRATEGIES);
  if (values.replay === true) {
    const strategies: readonly PlanStrategy[] =
      strategy === undefined ? PLAN_STRATEGIES : [strategy, 'sequence'];
    return planReplay(requiredStringOption(values, 'workload', 'plan'), [...new Set(strategies)], values, io);
  }
  const workload = workloadFromOptions(values, 'plan', io.cwd);
  const summary = summarizeWorkload(workload);
  const built = buildWorkload(workload);
  const sequenceBytes = summary.pathTokens * summary.kvBytesPerToken;
  const strategies: readonly PlanStrategy[] = strategy === undefined ? PLAN_STRATEGIES : [strategy];
  const plans = strategies.map((name) => {
    const timed = planWorkload(built, name);
    const { plan } = timed;
    return {
      strategy: name,
      numChunks: plan.numChunks,
      numPartials: plan.numPartials,
      numQueries: plan.numQueries,
      io: plan.io,
      kvReadToUnique: plan.io.kvBytesRead / plan.io.uniqueKvBytes,
      kvReadToSequence: plan.io.kvBytesRead / sequenceBytes,
      planMicroseconds: timed.planMicroseconds,
      planMinMicroseconds: timed.planMinMicroseconds,
      planRuns: timed.planRuns,
    };
  });
  if (values.json === true) {
    const report = {
      workload: {
        name: workload.name,
        heads: workload.heads,
        kvHeads: workload.kvHeads,
        headDim: workload.headDim,
        dtype: workload.dtype,
        pageSize: workload.pageSize,
        ...summary,
        sequenceKvBytes: sequenceBytes,
      },
      plans,
    };
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  io.stdout(`${describeWorkload(workload, summary)}\n`);
  io.stdout(
    `unique KV ${formatBytes(summary.uniqueVisibleTokens * summary.kvBytesPerToken)} (${summary.uniqueVisibleTokens} tokens); ` +
      `the sequence baseline reads ${formatBytes(sequenceBytes)} (Σ path lengths: ${summary.pathTokens} tokens); per layer\n\n`,
  );
  io.stdout(
    formatTable(
      [
        { header: 'strategy' },
        { header: 'chunks', align: 'right' },
        { header: 'partials', align: 'right' },
        { header: 'unique KV', align: 'right' },
        { header: 'KV read', align: 'right' },
        { header: 'read/unique', align: 'right' },
        { header: 'vs sequence', align: 'right' },
        { header: 'mask', align: 'right' },
        { header: 'partial bytes', align: 'right' },
        { header: 'planning', align: 'right' },
      ],
      plans.map((entry) => [
        entry.strategy,
        String(entry.numChunks),
        String(entry.numPartials),
        formatBytes(entry.io.uniqueKvBytes),
        formatBytes(entry.io.kvBytesRead),
        formatRatio(entry.kvReadToUnique),
        formatRatio(entry.kvReadToSequence),
        formatBytes(entry.io.maskBytes),
        formatBytes(entry.io.partialBytes),
        formatMicroseconds(entry.planMicroseconds),
      ]),
    ),
  );
  return 0;
}
