import os from 'node:os';
import path from 'node:path';
import { type DType, isModelBackend, type PlanStrategy, UnsupportedError } from '@deft/core';
import type { CudaBackend } from '@deft/kernels-cuda';
import { type BackendName, type OpenedBackend, openBackend } from '../backends/open-backend.js';
import type { CliIo } from '../cli/cli-io.js';
import {
  choiceOption,
  integerOption,
  listOption,
  parseCommandLine,
  stringOption,
} from '../cli/parse-command-line.js';
import { parseStrategies } from '../cli/parse-strategies.js';
import { checkOutputPath, writeReportAfterTable } from '../cli/report-file.js';
import { E2E_MODELS } from '../e2e/e2e-models.js';
import { type E2eResult, type E2eRow, runE2eBench } from '../e2e/run-e2e-bench.js';
import { UsageError } from '../errors/usage-error.js';
import { formatTable } from '../format/format-table.js';
import { BUILTIN_WORKLOADS, findBuiltinWorkload } from '../workloads/builtin.js';

const BACKENDS = ['auto', 'cpu', 'cuda'] as const;
const MODELS = Object.keys(E2E_MODELS);
const DTYPES = ['f16', 'f32'] as const;

const HELP = `Usage: deft bench-e2e [--backend auto|cpu|cuda] [--model ${MODELS.join('|')}]
                      [--workloads a,b,…] [--strategies s,…] [--runs N] [--json FILE]

Times whole decoding steps: a Llama-shaped model with seeded random weights made on the device
(no download) decodes each workload's tree as its KV cache, one new token per query, and chooses
every row's next token on the device. Per workload and strategy: the GPU time of the step, the
host time to enqueue it, the wall time back to back, tokens/s, the plan time, the attention time
alone, the bytes read (weights and unique KV), and the floor: the larger of (weights + unique KV)
/ copy bandwidth and FLOPs / fp16 tensor-core rate, both measured in the same run. The sequence
baseline runs in the same run; the summary gives DeFT's speedup over it and the attention-free
bound (the sequence step with its attention time removed).

Options:
  -b, --backend B      auto (default): cuda when its addon loads and a device exists, else cpu (the
                       tiny model only: CPU times compare nothing, the run checks the command)
  -m, --model M        ${MODELS.join(', ')} (default llama3-8b on cuda, tiny on cpu)
  -w, --workloads L    built-in workloads (default: all:
                       ${BUILTIN_WORKLOADS.map((workload) => workload.name).join(', ')})
  -s, --strategies L   attention strategies (default deft-flatten); sequence is always run, and the
                       first other strategy is compared with it
  -r, --runs N         timed steps per row, median reported (default 10 on cuda, 2 on cpu)
  --weight-dtype D     f16 (default) or f32 weights
  --seed N             weight and token seed (default 1)
  --json FILE          also write every number as JSON to FILE ('-': the JSON to stdout instead
                       of the table)
  -h, --help           show this help

Examples:
  pnpm deft bench-e2e --backend cuda --model llama3-8b --json e2e-8b.json
  pnpm deft bench-e2e --backend cpu --model tiny --workloads sd-t64
`;

/** `deft bench-e2e`: whole decoding steps of a Llama-shaped model on each workload; resolves to the exit code. */
export async function runBenchE2e(argv: readonly string[], io: CliIo): Promise<number> {
  const { help, values } = parseCommandLine('bench-e2e', argv, {
    backend: { type: 'string', short: 'b' },
    model: { type: 'string', short: 'm' },
    workloads: { type: 'string', short: 'w' },
    strategies: { type: 'string', short: 's' },
    runs: { type: 'string', short: 'r' },
    'weight-dtype': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const requested = choiceOption(values, 'backend', BACKENDS) ?? 'auto';
  const modelOption = choiceOption(values, 'model', MODELS);
  const weightDtype: DType = choiceOption(values, 'weight-dtype', DTYPES) ?? 'f16';
  const seed = integerOption(values, 'seed', 0) ?? 1;
  const runsOption = integerOption(values, 'runs', 1);
  const jsonFile = stringOption(values, 'json');
  if (jsonFile !== undefined && jsonFile !== '-') checkOutputPath(path.resolve(io.cwd, jsonFile), '--json');
  const workloads = (
    listOption(values, 'workloads') ?? BUILTIN_WORKLOADS.map((workload) => workload.name)
  ).map((name) => {
    const workload = findBuiltinWorkload(name);
    if (workload === undefined) {
      throw new UsageError(
        `--workloads: unknown workload '${name}'; one of ${BUILTIN_WORKLOADS.map((entry) => entry.name).join(', ')}`,
        { argument: '--workloads', expected: 'built-in workload names', actual: name },
      );
    }
    return workload;
  });
  const strategies = parseStrategies(listOption(values, 'strategies'), ['deft-flatten']);
  // The DeFT strategy the summary compares with sequence: the first other one listed.
  const compared = strategies.find((strategy) => strategy !== 'sequence');

  const opened = await openE2eBackend(requested, io);
  try {
    const onCuda = opened.backend.name === 'cuda';
    const modelName = modelOption ?? (onCuda ? 'llama3-8b' : 'tiny');
    if (!onCuda && modelName !== 'tiny') {
      throw new UsageError(
        `--model ${modelName} needs the cuda backend; the cpu backend runs --model tiny (it checks the command, it measures nothing)`,
        { argument: '--model', expected: 'tiny', actual: modelName },
      );
    }
    const config = E2E_MODELS[modelName]!;
    const runs = runsOption ?? (onCuda ? 10 : 2);
    const backend = opened.backend;
    if (!isModelBackend(backend)) throw new UnsupportedError(`the ${backend.name} backend has no model ops`);
    const result = await runE2eBench(backend, {
      config,
      workloads,
      strategies,
      runs,
      weightDtype,
      kvDtype: 'f16',
      seed,
      ...(onCuda ? { cuda: (backend as CudaBackend).timing } : {}),
      onRow: (row) => {
        if (jsonFile !== '-')
          io.stderr(`  ${row.workload} ${row.strategy}: ${row.stepMilliseconds.toFixed(3)} ms\n`);
      },
    });
    const report = {
      format: 'deft-bench-e2e',
      version: 1,
      date: new Date().toISOString(),
      backend: { name: backend.name, device: opened.description },
      host: {
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
        cpus: os.cpus().length,
      },
      model: { name: modelName, ...config, ropeFrequencyFactors: undefined },
      settings: { runs, weightDtype, kvDtype: 'f16', seed, strategies },
      floors: result.floors,
      rows: result.rows,
    };
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (jsonFile === '-') {
      io.stdout(json);
      return 0;
    }
    io.stdout(
      `deft bench-e2e: ${modelName} (${weightDtype} weights, f16 KV) on ${opened.description}; median of ${runs} steps\n`,
    );
    if (result.floors !== undefined) {
      io.stdout(
        `floors measured in this run: copy ${result.floors.copyGigabytesPerSecond.toFixed(0)} GB/s, fp16 tensor cores ${result.floors.tensorTeraflops.toFixed(0)} TFLOP/s\n`,
      );
    }
    io.stdout('\nms; step, attn: GPU time (CPU: wall); host: enqueueing the step; wall: step to token ids\n');
    io.stdout(
      `${formatE2eTable(result)}\n${compared === undefined ? '' : formatE2eSummary(result, compared)}`,
    );
    const blocked = result.rows.filter((row) => row.enqueueBlocked);
    if (blocked.length > 0) {
      io.stdout(
        `warning: enqueueing filled the launch queue (${blocked.map((row) => `${row.workload} ${row.strategy}`).join(', ')}): those GPU times include host gaps\n`,
      );
    }
    if (jsonFile !== undefined && !writeReportAfterTable(io, 'bench-e2e', jsonFile, json)) return 1;
    return 0;
  } finally {
    opened.dispose();
  }
}

async function openE2eBackend(requested: (typeof BACKENDS)[number], io: CliIo): Promise<OpenedBackend> {
  if (requested !== 'auto') return openBackend(requested as BackendName);
  try {
    return await openBackend('cuda');
  } catch (error) {
    if (!UnsupportedError.isInstance(error)) throw error;
    io.stderr(
      `deft bench-e2e: ${(error as Error).message.split('\n')[0]}; running the tiny model on the CPU\n`,
    );
    return openBackend('cpu');
  }
}

const fixed = (value: number | undefined, digits = 2): string =>
  value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);

function formatE2eTable(result: E2eResult): string {
  const header = [
    { header: 'workload' },
    { header: 'strategy' },
    ...['rows', 'step', 'floor', 'xfloor', 'host', 'host%', 'wall', 'tok/s', 'attn', 'plan'].map((name) => ({
      header: name,
      align: 'right' as const,
    })),
  ];
  const body = result.rows.map((row: E2eRow) => [
    row.workload,
    row.strategy,
    String(row.queries),
    fixed(row.stepMilliseconds, 3),
    row.floorMilliseconds === undefined
      ? '-'
      : `${fixed(row.floorMilliseconds, 3)} ${row.floorBound === 'memory' ? 'mem' : 'fp16'}`,
    row.floorMilliseconds === undefined ? '-' : fixed(row.stepMilliseconds / row.floorMilliseconds),
    fixed(row.hostEnqueueMilliseconds, 3),
    Number.isNaN(row.hostEnqueueMilliseconds)
      ? '-'
      : `${((100 * row.hostEnqueueMilliseconds) / row.stepMilliseconds).toFixed(0)}%`,
    fixed(row.wallMilliseconds, 3),
    fixed(row.tokensPerSecond, 0),
    fixed(row.attentionMilliseconds, 3),
    fixed(row.planMilliseconds, 3),
  ]);
  return formatTable(header, body);
}

/** Per workload: DeFT's step speedup over sequence and the attention-free bound of that speedup. */
function formatE2eSummary(result: E2eResult, strategy: PlanStrategy): string {
  const lines: string[] = [];
  const workloads = [...new Set(result.rows.map((row) => row.workload))];
  for (const workload of workloads) {
    const deft = result.rows.find((row) => row.workload === workload && row.strategy === strategy);
    const sequence = result.rows.find((row) => row.workload === workload && row.strategy === 'sequence');
    if (deft === undefined || sequence === undefined) continue;
    const speedup = sequence.stepMilliseconds / deft.stepMilliseconds;
    // Attention timed alone can exceed its share of the step (no overlap with the other kernels): no bound then.
    const attentionFree =
      sequence.attentionMilliseconds === undefined
        ? undefined
        : sequence.stepMilliseconds - sequence.attentionMilliseconds;
    const bound =
      attentionFree === undefined || attentionFree <= 0
        ? undefined
        : sequence.stepMilliseconds / attentionFree;
    lines.push(
      `${workload}: ${strategy} ${speedup.toFixed(2)}x over sequence${bound === undefined ? '' : ` (attention-free bound ${bound.toFixed(2)}x)`}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
