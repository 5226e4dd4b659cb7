import os from 'node:os';
import path from 'node:path';
import { PLAN_STRATEGIES, UnsupportedError } from '@deft/core';
import { ATTENTION_TOLERANCE } from '@deft/testing';
import { probeWebGpuAdapter } from '../backends/open-backend.js';
import { BENCH_FORMAT_VERSION, type BenchReport, type BenchRow } from '../bench/bench-result.js';
import { BENCH_TABLE_LEGEND, formatBenchSummary, formatBenchTable } from '../bench/format-bench.js';
import { type GpuBackendName, type GpuBenchOptions, loadGpuBench } from '../bench/gpu-bench-modules.js';
import { CPU_HEAD_SCALING_NOTE, CPU_TIMING_NOTE, runCpuBench } from '../bench/run-cpu-bench.js';
import type { CliIo } from '../cli/cli-io.js';
import {
  choiceOption,
  integerOption,
  listOption,
  parseCommandLine,
  stringOption,
} from '../cli/parse-command-line.js';
import { parseStrategies } from '../cli/parse-strategies.js';
import { createProgress } from '../cli/progress.js';
import { checkOutputPath, writeReportAfterTable } from '../cli/report-file.js';
import { OUTPUT_COLUMNS, wrapText } from '../format/wrap-text.js';
import { BUILTIN_WORKLOADS, PAPER_WORKLOAD_NAMES } from '../workloads/builtin.js';
import { datasetAvailable, datasetDirectory } from '../workloads/replay/deft-dataset.js';
import { REPLAYED_WORKLOAD_NAMES, resolveWorkload } from '../workloads/resolve-workload.js';
import type { Workload } from '../workloads/workload.js';
import { ensureWorkloadFits } from '../workloads/workload-memory.js';
import { summarizeWorkload } from '../workloads/workload-summary.js';

const BACKENDS = ['auto', 'cpu', 'webgpu', 'cuda'] as const;
type BenchBackend = (typeof BACKENDS)[number];

/** Timed runs per layer when `--repetitions` is not given. */
const DEFAULT_REPETITIONS = { cpu: 3, gpu: 50 } as const;

const HELP = `Usage: deft bench [--backend auto|cpu|webgpu|cuda] [--workloads a,b,…] [--strategies s,…]
                  [--repetitions N] [--all-heads] [--quick] [--json FILE]

The main job: runs decoding-tree workloads through every attention strategy and prints, per workload
and strategy, the attention time per layer, the KV bytes read and the unique KV bytes (per layer),
and both ratios to the sequence baseline (each query reading its whole path, as Flash-Decoding and
paged attention do), measured in the same run.

Options:
  -b, --backend B      auto (default): cuda if its addon loads and a device exists, else webgpu if
                       a hardware adapter exists (not a software renderer such as llvmpipe), else
                       cpu (the float64 reference: its times compare the strategies' work, not
                       kernel speed)
  -w, --workloads L    comma-separated workloads, any name 'deft plan --workload' accepts (default:
                       ${BUILTIN_WORKLOADS.map((workload) => workload.name).join(', ')}, and when
                       ../shared/workloads/deft-dataset is present
                       ${REPLAYED_WORKLOAD_NAMES.slice(0, 4).join(', ')},
                       ${REPLAYED_WORKLOAD_NAMES.slice(4).join(', ')})
  -s, --strategies L   comma-separated strategies (default: all of
                       ${PLAN_STRATEGIES.join(', ')});
                       sequence is always run: it is the baseline
  -r, --repetitions N  timed runs per layer, median reported (default: ${DEFAULT_REPETITIONS.cpu} on cpu, ${DEFAULT_REPETITIONS.gpu} on a GPU)
  --all-heads          cpu: time every head (default: the query heads of one KV head, the time
                       scaled by the number of KV heads: about 8× faster on Llama-3-8B shapes)
  --quick              only the paper's five workloads:
                       ${PAPER_WORKLOAD_NAMES.join(', ')}
  --json FILE          also write every number as JSON to FILE ('-': the JSON to stdout instead of
                       the table)
  -h, --help           show this help

Progress goes to standard error: a redrawn line on a terminal, one line per item otherwise.

Examples:
  pnpm deft bench
  pnpm deft bench --quick --json bench.json
  pnpm deft bench --backend cpu --workloads sd-t64,tot:docmerge:0 --strategies deft-flatten
`;

/** `deft bench`: every workload through every strategy, against the sequence baseline; resolves to the exit code. */
export async function runBenchCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { help, values } = parseCommandLine('bench', argv, {
    backend: { type: 'string', short: 'b' },
    workloads: { type: 'string', short: 'w' },
    strategies: { type: 'string', short: 's' },
    repetitions: { type: 'string', short: 'r' },
    'all-heads': { type: 'boolean' },
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
  const allHeads = values['all-heads'] === true;
  const quick = values.quick === true;
  const jsonFile = stringOption(values, 'json');
  if (jsonFile !== undefined && jsonFile !== '-') checkOutputPath(path.resolve(io.cwd, jsonFile), '--json');
  const workloads = selectWorkloads(listOption(values, 'workloads'), quick, io);
  // Before any run: a workload too large for memory ends in a CapacityError, not an OOM halfway through.
  // GPU benches check against the float64 reference, so its copies count unless the CPU was asked for.
  for (const workload of workloads) ensureWorkloadFits(workload, { withReference: requested !== 'cpu' });
  const progress = createProgress(io, workloads.length * strategies.length);

  let outcome = await runOnGpu(
    requested,
    { workloads, strategies, repetitions: repetitionsOption ?? DEFAULT_REPETITIONS.gpu, progress },
    io,
  );
  if (outcome === undefined) {
    if (requested === 'auto')
      io.stderr('deft bench: no GPU backend available: running on the CPU reference backend\n');
    const repetitions = repetitionsOption ?? DEFAULT_REPETITIONS.cpu;
    const cpu = await runCpuBench({ workloads, strategies, repetitions, allHeads, progress });
    outcome = {
      backend: 'cpu',
      device: cpu.device,
      rows: cpu.rows,
      repetitions,
      note: `${CPU_TIMING_NOTE}; ${allHeads ? 'every head timed' : CPU_HEAD_SCALING_NOTE}`,
      notes: [],
    };
  }
  progress.finish();

  const report: BenchReport = {
    format: 'deft-bench',
    version: BENCH_FORMAT_VERSION,
    date: new Date().toISOString(),
    backend: { name: outcome.backend, device: outcome.device, note: outcome.note },
    host: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: os.cpus().length },
    settings: { repetitions: outcome.repetitions, quick, strategies },
    workloads: workloads.map((workload) => ({
      name: workload.name,
      heads: workload.heads,
      kvHeads: workload.kvHeads,
      headDim: workload.headDim,
      dtype: workload.dtype,
      pageSize: workload.pageSize,
      ...summarizeWorkload(workload),
    })),
    results: outcome.rows,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (jsonFile === '-') {
    io.stdout(json);
    return 0;
  }

  const runs = outcome.repetitions;
  io.stdout(
    `deft bench: backend ${outcome.backend} (${outcome.device}); ${runs} timed run${runs === 1 ? '' : 's'} per layer\n`,
  );
  io.stdout(`${wrapText(`note: ${outcome.note}`, OUTPUT_COLUMNS, '  ')}\n`);
  io.stdout(`${wrapText(BENCH_TABLE_LEGEND, OUTPUT_COLUMNS, '  ')}\n\n`);
  io.stdout(formatBenchTable(outcome.rows));
  for (const line of outcome.notes) io.stdout(`${wrapText(line, OUTPUT_COLUMNS, '  ')}\n`);
  const summary = formatBenchSummary(outcome.rows, strategies);
  if (summary !== '') io.stdout(`\n${summary}`);
  const checks = reportFailedChecks(outcome.rows, workloads, io);
  if (jsonFile !== undefined && !writeReportAfterTable(io, 'bench', jsonFile, json)) return 1;
  return checks;
}

/**
 * A backend that checks its output (`extra.relativeError`) against the float64 reference fails the
 * bench (exit code 1) when any row is beyond the tolerance of its KV dtype.
 */
function reportFailedChecks(rows: readonly BenchRow[], workloads: readonly Workload[], io: CliIo): number {
  let failed = 0;
  for (const row of rows) {
    const error = row.extra?.relativeError;
    if (error === undefined) continue;
    const dtype = workloads.find((workload) => workload.name === row.workload)?.dtype ?? 'f16';
    if (!(error <= ATTENTION_TOLERANCE[dtype])) {
      failed++;
      io.stderr(
        `deft bench: ${row.workload} ${row.strategy}: relative error ${error} exceeds ${ATTENTION_TOLERANCE[dtype]} (${dtype} KV)\n`,
      );
    }
  }
  return failed === 0 ? 0 : 1;
}

/** What one backend's bench produced. */
interface BenchOutcome {
  readonly backend: string;
  readonly device: string;
  readonly rows: readonly BenchRow[];
  readonly repetitions: number;
  readonly note: string;
  readonly notes: readonly string[];
}

/**
 * Runs the bench on the requested GPU backend, or with `auto` on the first available of cuda and webgpu.
 * Resolves to `undefined` when the CPU should run it (`cpu`, or `auto` with no GPU).
 *
 * @throws {UnsupportedError} when an explicitly requested GPU backend is unavailable.
 */
async function runOnGpu(
  requested: BenchBackend,
  options: GpuBenchOptions,
  io: CliIo,
): Promise<BenchOutcome | undefined> {
  const candidates: GpuBackendName[] =
    requested === 'auto' ? ['cuda', 'webgpu'] : requested === 'cpu' ? [] : [requested];
  for (const candidate of candidates) {
    if (requested === 'auto' && candidate === 'webgpu') {
      const adapter = await probeWebGpuAdapter();
      const skip =
        adapter === undefined
          ? 'no WebGPU adapter'
          : adapter.software
            ? `the adapter is a software renderer, ${adapter.description}; --backend webgpu runs on it anyway`
            : undefined;
      if (skip !== undefined) {
        io.stderr(`deft bench: webgpu skipped (${skip})\n`);
        continue;
      }
    }
    const load = await loadGpuBench(candidate);
    if (!load.available) {
      if (requested !== 'auto')
        throw new UnsupportedError(`the ${candidate} backend is unavailable: ${load.reason}`);
      io.stderr(`deft bench: ${candidate} unavailable (${load.reason})\n`);
      continue;
    }
    try {
      const outcome = await load.run(options);
      return {
        backend: candidate,
        device: outcome.device,
        rows: outcome.rows,
        repetitions: options.repetitions,
        note: `${candidate} kernels; time per layer is the median of ${options.repetitions} timed runs`,
        notes: outcome.notes ?? [],
      };
    } catch (error) {
      if (requested !== 'auto' || !UnsupportedError.isInstance(error)) throw error;
      io.stderr(`deft bench: ${candidate} unavailable (${error.message})\n`);
    }
  }
  return undefined;
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
