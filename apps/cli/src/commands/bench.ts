import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PLAN_STRATEGIES, type PlanStrategy, UnsupportedError } from '@deft/core';
import { BENCH_FORMAT_VERSION, type BenchReport, type BenchRow } from '../bench/bench-result.js';
import { formatBenchSummary, formatBenchTable } from '../bench/format-bench.js';
import { type GpuBackendName, loadGpuBench } from '../bench/gpu-bench-modules.js';
import { CPU_TIMING_NOTE, runCpuBench } from '../bench/run-cpu-bench.js';
import type { CliIo } from '../cli/cli-io.js';
import {
  choiceOption,
  integerOption,
  listOption,
  parseCommandLine,
  stringOption,
} from '../cli/parse-command-line.js';
import { createProgress } from '../cli/progress.js';
import { UsageError } from '../errors/usage-error.js';
import { BUILTIN_WORKLOADS, PAPER_WORKLOAD_NAMES } from '../workloads/builtin.js';
import { datasetAvailable, datasetDirectory } from '../workloads/replay/deft-dataset.js';
import { REPLAYED_WORKLOAD_NAMES, resolveWorkload } from '../workloads/resolve-workload.js';
import type { Workload } from '../workloads/workload.js';
import { summarizeWorkload } from '../workloads/workload-summary.js';

const BACKENDS = ['auto', 'cpu', 'webgpu', 'cuda'] as const;
type BenchBackend = (typeof BACKENDS)[number];

/** Timed runs per layer when `--repetitions` is not given. */
const DEFAULT_REPETITIONS = { cpu: 1, gpu: 50 } as const;

const HELP = `Usage: deft bench [--backend auto|cpu|webgpu|cuda] [--workloads a,b,…] [--strategies s,…]
                  [--repetitions N] [--quick] [--json FILE]

The main job: runs decoding-tree workloads through every attention strategy and prints, per workload
and strategy, the attention time per layer, the KV bytes read and the unique KV bytes (per layer),
and both ratios to the sequence baseline (each query reading its whole path, as Flash-Decoding and
paged attention do), measured in the same run.

Options:
  -b, --backend B      auto (default): cuda if its addon loads and a device exists, else webgpu if
                       an adapter exists, else cpu (the float64 reference: its times compare
                       strategies' work, not kernel speed)
  -w, --workloads L    comma-separated workloads (default: ${BUILTIN_WORKLOADS.map((workload) => workload.name).join(', ')},
                       and, when ../shared/workloads/deft-dataset is present, ${REPLAYED_WORKLOAD_NAMES.join(', ')});
                       any name 'deft plan --workload' accepts
  -s, --strategies L   comma-separated strategies (default: ${PLAN_STRATEGIES.join(', ')}); sequence is
                       always run as the baseline
  -r, --repetitions N  timed runs per layer (default: ${DEFAULT_REPETITIONS.cpu} on cpu, ${DEFAULT_REPETITIONS.gpu} on a GPU); the median is reported
  --quick              only the paper's five workloads (${PAPER_WORKLOAD_NAMES.join(', ')})
  --json FILE          also write every number as JSON to FILE ('-': JSON to stdout instead of the table)
  -h, --help           show this help

Progress goes to standard error: a redrawn line on a terminal, one line per item otherwise.

Examples:
  pnpm deft bench
  pnpm deft bench --quick --json bench.json
  pnpm deft bench --backend cpu --workloads sd-t64,tot:docmerge:0 --strategies deft-flatten
`;

/** `deft bench`: every workload through every strategy, against the sequence baseline.; resolves to the exit code. */
export async function runBenchCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { help, values } = parseCommandLine('bench', argv, {
    backend: { type: 'string', short: 'b' },
    workloads: { type: 'string', short: 'w' },
    strategies: { type: 'string', short: 's' },
    repetitions: { type: 'string', short: 'r' },
    quick: { type: 'boolean' },
    json: { type: 'string' },
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const requested: BenchBackend = choiceOption(values, 'backend', BACKENDS) ?? 'auto';
  const strategies = parseStrategies(listOption(values, 'strategies'));
  const repetitionsOption = integerOption(values, 'repetitions', 1);
  const quick = values.quick === true;
  const jsonFile = stringOption(values, 'json');
  const workloads = selectWorkloads(listOption(values, 'workloads'), quick, io);

  const totalItems = workloads.length * strategies.length;
  const progress = createProgress(io, totalItems);
  let backendName: string;
  let device: string;
  let note: string;
  let rows: readonly BenchRow[];
  let notes: readonly string[] = [];
  let repetitions: number;

  const gpuCandidates: GpuBackendName[] =
    requested === 'auto' ? ['cuda', 'webgpu'] : requested === 'cpu' ? [] : [requested];
  let gpuOutcome:
    | { name: GpuBackendName; device: string; rows: readonly BenchRow[]; notes?: readonly string[] }
    | undefined;
  repetitions = repetitionsOption ?? DEFAULT_REPETITIONS.gpu;
  for (const candidate of gpuCandidates) {
    const load = await loadGpuBench(candidate);
    if (!load.available) {
      if (requested !== 'auto')
        throw new UnsupportedError(`the ${candidate} backend is unavailable: ${load.reason}`);
      io.stderr(`deft bench: ${candidate} unavailable (${load.reason})\n`);
      continue;
    }
    try {
      const outcome = await load.run({ workloads, strategies, repetitions, progress });
      gpuOutcome = { name: candidate, ...outcome };
      break;
    } catch (error) {
      if (requested !== 'auto' || !UnsupportedError.isInstance(error)) throw error;
      io.stderr(`deft bench: ${candidate} unavailable (${error.message})\n`);
    }
  }
  if (gpuOutcome !== undefined) {
    backendName = gpuOutcome.name;
    device = gpuOutcome.device;
    rows = gpuOutcome.rows;
    notes = gpuOutcome.notes ?? [];
    note = `${backendName} kernels; ${repetitions} timed runs per layer, median`;
  } else {
    repetitions = repetitionsOption ?? DEFAULT_REPETITIONS.cpu;
    if (requested === 'auto')
      io.stderr('deft bench: no GPU backend available: running on the CPU reference backend\n');
    const outcome = await runCpuBench({ workloads, strategies, repetitions, progress });
    backendName = 'cpu';
    device = outcome.device;
    rows = outcome.rows;
    note = CPU_TIMING_NOTE;
  }
  progress.finish();

  const report: BenchReport = {
    format: 'deft-bench',
    version: BENCH_FORMAT_VERSION,
    date: new Date().toISOString(),
    backend: { name: backendName, device, note },
    host: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: os.cpus().length },
    settings: { repetitions, quick, strategies },
    workloads: workloads.map((workload) => ({
      name: workload.name,
      heads: workload.heads,
      kvHeads: workload.kvHeads,
      headDim: workload.headDim,
      dtype: workload.dtype,
      pageSize: workload.pageSize,
      ...summarizeWorkload(workload),
    })),
    results: rows,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (jsonFile === '-') {
    io.stdout(json);
    return 0;
  }
  if (jsonFile !== undefined) writeFileSync(path.resolve(io.cwd, jsonFile), json);

  io.stdout(
    `deft bench: backend ${backendName} (${device}); ${repetitions} timed run${repetitions === 1 ? '' : 's'} per layer\n`,
  );
  if (backendName === 'cpu') io.stdout(`note: ${CPU_TIMING_NOTE}\n`);
  io.stdout(
    'per layer: KV bytes are K and V of one layer; "vs seq" is the ratio to the sequence baseline of the same workload\n\n',
  );
  io.stdout(formatBenchTable(rows));
  for (const line of notes) io.stdout(`${line}\n`);
  const summary = formatBenchSummary(rows, strategies);
  if (summary !== '') io.stdout(`\n${summary}`);
  if (jsonFile !== undefined) io.stdout(`\nwrote ${jsonFile}\n`);
  return 0;
}

function parseStrategies(names: string[] | undefined): PlanStrategy[] {
  if (names === undefined) return [...PLAN_STRATEGIES];
  const strategies: PlanStrategy[] = [];
  for (const name of names) {
    if (!(PLAN_STRATEGIES as readonly string[]).includes(name)) {
      throw new UsageError(
        `--strategies: unknown strategy '${name}' (strategies: ${PLAN_STRATEGIES.join(', ')})`,
        {
          argument: '--strategies',
          actual: name,
        },
      );
    }
    if (!strategies.includes(name as PlanStrategy)) strategies.push(name as PlanStrategy);
  }
  // The baseline is always measured, last, so every ratio has its denominator.
  if (!strategies.includes('sequence')) strategies.push('sequence');
  return strategies;
}

function selectWorkloads(names: string[] | undefined, quick: boolean, io: CliIo): Workload[] {
  if (names !== undefined) return names.map((name) => resolveWorkload(name, { cwd: io.cwd }));
  if (quick) return PAPER_WORKLOAD_NAMES.map((name) => resolveWorkload(name, { cwd: io.cwd }));
  const workloads = [...BUILTIN_WORKLOADS];
  if (datasetAvailable()) {
    for (const name of REPLAYED_WORKLOAD_NAMES) workloads.push(resolveWorkload(name, { cwd: io.cwd }));
  } else {
    io.stderr(`deft bench: no DeFT dataset at ${datasetDirectory()}: replayed workloads skipped\n`);
  }
  return workloads;
}
