/**
 * GPU entry point of the WebGPU backend: checks every strategy against the float64 reference on seeded
 * random trees, then benchmarks the paper workloads (Llama-3-8B attention shapes), in one process on
 * one device. Prints a short table last and writes everything as JSON to the path given by `--json`.
 *
 *   node webgpu-main.mjs [--json PATH] [--seeds N] [--check-shape H/KV/D] [--runs N] [--workloads a,b]
 *                        [--strategies s,t] [--chunk-sizes 64,256] [--target-workgroups N] [--quick]
 *                        [--skip-check] [--skip-bench]
 */
import { writeFileSync } from 'node:fs';
import { PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { createWebGpuBackend, requestWebGpuDevice } from '@deft/kernels-webgpu';
import type { Progress } from '../cli/progress.js';
import { formatRatio, significant } from '../format/format-number.js';
import { formatTable } from '../format/format-table.js';
import { findBuiltinWorkload, PAPER_WORKLOAD_NAMES } from '../workloads/builtin.js';
import type { Workload } from '../workloads/workload.js';
import { runWebGpuBench, type WebGpuBenchOutcome } from './webgpu-bench.js';
import { runWebGpuCheck, type WebGpuCheckCase } from './webgpu-check.js';

interface MainOptions {
  json?: string;
  seeds: number;
  checkShape: { numHeads: number; numKvHeads: number; headDim: number };
  runs: number;
  workloads: string[];
  strategies: PlanStrategy[];
  chunkSizes: number[];
  targetWorkgroups?: number;
  quick: boolean;
  check: boolean;
  bench: boolean;
}

function parseArguments(argv: readonly string[]): MainOptions {
  const options: MainOptions = {
    seeds: 12,
    checkShape: { numHeads: 32, numKvHeads: 8, headDim: 128 },
    runs: 50,
    workloads: [...PAPER_WORKLOAD_NAMES],
    strategies: [...PLAN_STRATEGIES],
    chunkSizes: [],
    quick: false,
    check: true,
    bench: true,
  };
  for (let index = 0; index < argv.length; index++) {
    const flag = argv[index]!;
    const value = (): string => {
      const next = argv[++index];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--json') options.json = value();
    else if (flag === '--seeds') options.seeds = Number(value());
    else if (flag === '--check-shape') {
      const [numHeads, numKvHeads, headDim] = value().split('/').map(Number);
      options.checkShape = { numHeads: numHeads!, numKvHeads: numKvHeads!, headDim: headDim! };
    } else if (flag === '--runs') options.runs = Number(value());
    else if (flag === '--workloads') options.workloads = value().split(',');
    else if (flag === '--strategies') options.strategies = value().split(',') as PlanStrategy[];
    else if (flag === '--chunk-sizes') options.chunkSizes = value().split(',').map(Number);
    else if (flag === '--target-workgroups') options.targetWorkgroups = Number(value());
    else if (flag === '--quick') options.quick = true;
    else if (flag === '--skip-check') options.check = false;
    else if (flag === '--skip-bench') options.bench = false;
    else throw new Error(`unknown option ${flag}`);
  }
  return options;
}

const stderrProgress: Progress = (() => {
  let label = '';
  return {
    start(next: string) {
      label = next;
    },
    done(result: string) {
      process.stderr.write(`${label}: ${result}\n`);
    },
    finish() {},
  };
})();

/** `--quick`: the same tree shapes with 1/8 of the tokens and 8 heads, 2 KV heads, head dim 32 (for CPU drivers). */
function shrinkWorkload(workload: Workload): Workload {
  return {
    ...workload,
    name: `${workload.name}/quick`,
    heads: 8,
    kvHeads: 2,
    headDim: 32,
    nodes: workload.nodes.map((node) => ({ ...node, tokens: Math.max(1, Math.round(node.tokens / 8)) })),
  };
}

function benchTable(outcome: WebGpuBenchOutcome): string {
  const columns = [
    { header: 'workload' },
    { header: 'strategy' },
    { header: 'chunks', align: 'right' as const },
    { header: 'µs/layer', align: 'right' as const },
    { header: 'wall µs', align: 'right' as const },
    { header: 'GB/s uniq', align: 'right' as const },
    { header: 'mem floor', align: 'right' as const },
    { header: 'f32 floor', align: 'right' as const },
    { header: '×floor', align: 'right' as const },
    { header: 'vs seq', align: 'right' as const },
    { header: '√IO', align: 'right' as const },
    { header: 'rel err', align: 'right' as const },
  ];
  const rows = outcome.rows.map((row) => {
    const extra = row.extra ?? {};
    const strategy = extra.chunkSize === undefined ? row.strategy : `${row.strategy}/${extra.chunkSize}`;
    return [
      row.workload,
      strategy,
      String(row.numChunks),
      significant(row.layerMicroseconds.median),
      significant(extra.fencedWallMicroseconds ?? Number.NaN),
      significant(extra.uniqueGigabytesPerSecond ?? Number.NaN),
      significant(extra.memoryFloorMicroseconds ?? Number.NaN),
      significant(extra.computeFloorMicroseconds ?? Number.NaN),
      formatRatio(extra.ratioToFloor ?? Number.NaN),
      formatRatio(extra.speedupVsSequence ?? Number.NaN),
      formatRatio(extra.targetSpeedup ?? Number.NaN),
      (extra.relativeError ?? Number.NaN).toExponential(1),
    ];
  });
  return formatTable(columns, rows);
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  const workloads: Workload[] = options.workloads.map((name) => {
    const workload = findBuiltinWorkload(name);
    if (workload === undefined) throw new Error(`unknown workload ${name}`);
    return options.quick ? shrinkWorkload(workload) : workload;
  });
  const handle = await requestWebGpuDevice({ dawnOptions: ['disable-dawn-features=timestamp_quantization'] });
  const report: Record<string, unknown> = {
    format: 'deft-webgpu-gpu-run',
    version: 1,
    date: new Date().toISOString(),
    device: handle.description,
    arguments: process.argv.slice(2),
  };
  let checkFailures = 0;
  try {
    const backend = createWebGpuBackend({
      device: handle.device,
      ...(options.targetWorkgroups === undefined ? {} : { targetWorkgroups: options.targetWorkgroups }),
    });
    report.features = { ...backend.features };
    let checkCases: WebGpuCheckCase[] = [];
    if (options.check) {
      const started = performance.now();
      checkCases = await runWebGpuCheck(backend, { seeds: options.seeds, shape: options.checkShape });
      checkFailures = checkCases.filter((item) => !item.passed).length;
      const worst = { f16: 0, f32: 0 };
      for (const item of checkCases) worst[item.kvDtype] = Math.max(worst[item.kvDtype], item.relativeError);
      report.check = {
        seconds: (performance.now() - started) / 1000,
        shape: options.checkShape,
        worst,
        cases: checkCases,
      };
      console.log(
        `check: ${checkCases.length - checkFailures}/${checkCases.length} passed on ${options.seeds} random trees ` +
          `(${options.checkShape.numHeads}/${options.checkShape.numKvHeads}/${options.checkShape.headDim}); worst rel err f16 ${worst.f16.toExponential(1)}, f32 ${worst.f32.toExponential(1)}`,
      );
      for (const item of checkCases.filter((checked) => !checked.passed)) {
        console.log(`  FAILED ${item.description} ${item.kvDtype} ${item.strategy}: ${item.relativeError}`);
      }
    }
    backend.dispose();
    if (options.bench) {
      const outcome = await runWebGpuBench({
        workloads,
        strategies: options.strategies,
        repetitions: options.runs,
        progress: stderrProgress,
        device: handle.device,
        chunkSizes: options.chunkSizes,
        ...(options.targetWorkgroups === undefined ? {} : { targetWorkgroups: options.targetWorkgroups }),
        ...(options.quick
          ? {
              copyBufferBytes: 16 * 1024 * 1024,
              fmaWorkgroups: 64,
              minRuns: 3,
              budgetMilliseconds: 50,
              checkQueries: 4,
            }
          : {}),
      });
      report.bench = outcome;
      checkFailures += outcome.checks.filter((item) => !item.passed).length;
      for (const item of outcome.checks.filter((checked) => !checked.passed)) {
        console.log(`bench check FAILED ${item.workload} ${item.strategy}: ${item.relativeError}`);
      }
      console.log(`\nWebGPU on ${handle.description} (${outcome.timing})`);
      for (const note of outcome.notes ?? []) console.log(`  ${note}`);
      console.log(benchTable(outcome));
      console.log(
        '(µs/layer: median; vs seq = sequence µs / strategy µs; √IO = sqrt(sequence KV bytes / strategy KV bytes))',
      );
    }
  } finally {
    handle.dispose();
    if (options.json !== undefined) writeFileSync(options.json, `${JSON.stringify(report, null, 1)}\n`);
  }
  if (checkFailures > 0) {
    console.log(`${checkFailures} checks FAILED`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
