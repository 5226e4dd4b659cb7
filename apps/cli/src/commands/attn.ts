import path from 'node:path';
import { PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { ATTENTION_TOLERANCE, relativeError } from '@deft/testing';
import { dumpAttention } from '../attention/dump-attention.js';
import { planWorkload } from '../attention/plan-workload.js';
import { randomAttentionInputs } from '../attention/random-inputs.js';
import { referenceAttention } from '../attention/reference-attention.js';
import { createAttentionSession } from '../attention/run-attention.js';
import { BACKEND_NAMES, openBackend } from '../backends/open-backend.js';
import type { CliIo } from '../cli/cli-io.js';
import { choiceOption, parseCommandLine, stringOption } from '../cli/parse-command-line.js';
import { formatBytes, formatMicroseconds } from '../format/format-number.js';
import { buildWorkload } from '../workloads/build-workload.js';
import { ensureWorkloadFits } from '../workloads/workload-memory.js';
import { describeWorkload, summarizeWorkload } from '../workloads/workload-summary.js';
import { WORKLOAD_HELP, WORKLOAD_OPTIONS, workloadFromOptions } from './workload-options.js';

const HELP = `Usage: deft attn --workload W [--backend cpu|cuda|webgpu] [--strategy S] [--check] [--dump DIR] [--json]

Runs one layer of tree attention on seeded random Q/K/V (K and V exact in f16) and reports the time.

Options:
${WORKLOAD_HELP}
  -b, --backend B    ${BACKEND_NAMES.join(', ')} (default cpu: the float64 reference backend;
                     on a GPU the time is the wall-clock median of 10 runs after a warm-up)
  -s, --strategy S   ${PLAN_STRATEGIES.join(', ')} (default deft-flatten)
  --check            compare with the direct float64 reference (no plan): fails with exit code 1
                     when ‖out − ref‖ / ‖ref‖ exceeds 1e-5 (f32 KV) or 2e-3 (f16 KV)
  --dump DIR         write little-endian f32 q.bin [queries, heads, headDim], k.bin and v.bin
                     [treeTokens, kvHeads, headDim] (node order), out.bin [queries, heads, headDim]
                     and meta.json (shapes, scale, node parents and token counts, the queries)
  --json             print JSON instead of text
  -h, --help         show this help

CPU attention on full Llama-3-8B shapes takes a second or more per layer; --heads 8 --kv-heads 2 runs
a smaller shape.

Examples:
  pnpm deft attn --workload sd-t64 --check
  pnpm deft attn --workload tree.json --strategy sequence --dump out/tree
`;

/** `deft attn`: one layer of tree attention, optionally checked against the reference and dumped; resolves to the exit code. */
export async function runAttnCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { help, values } = parseCommandLine('attn', argv, {
    ...WORKLOAD_OPTIONS,
    backend: { type: 'string', short: 'b' },
    strategy: { type: 'string', short: 's' },
    check: { type: 'boolean' },
    dump: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const backendName = choiceOption(values, 'backend', BACKEND_NAMES) ?? 'cpu';
  const strategy: PlanStrategy = choiceOption(values, 'strategy', PLAN_STRATEGIES) ?? 'deft-flatten';
  const dumpDirectory = stringOption(values, 'dump');
  const workload = workloadFromOptions(values, 'attn', io.cwd);
  // Before anything is allocated: a workload too large for memory ends in a CapacityError, not an OOM.
  ensureWorkloadFits(workload, { withReference: values.check === true });
  const summary = summarizeWorkload(workload);
  const built = buildWorkload(workload);
  const inputs = randomAttentionInputs(built);
  const timed = planWorkload(built, strategy, { maxRuns: 20, budgetMilliseconds: 50 });
  const opened = await openBackend(backendName);
  const { backend } = opened;
  // GPUs: one untimed run (pipelines, uploads), then the median of several; the CPU reference: one run.
  const timedRuns = backendName === 'cpu' ? 1 : 10;
  let output: Float32Array;
  let layerMicroseconds: number;
  try {
    const session = createAttentionSession(backend, built, inputs);
    try {
      if (timedRuns > 1) await session.run(timed.plan, 1);
      const result = await session.run(timed.plan, timedRuns);
      output = result.output;
      const sorted = [...result.layerMicroseconds].sort((a, b) => a - b);
      layerMicroseconds = sorted[Math.floor(sorted.length / 2)]!;
    } finally {
      session.dispose();
    }
  } finally {
    opened.dispose();
  }
  let check: { relativeError: number; tolerance: number; passed: boolean } | undefined;
  if (values.check === true) {
    const error = relativeError(output, referenceAttention(built, inputs));
    const tolerance = ATTENTION_TOLERANCE[workload.dtype];
    check = { relativeError: error, tolerance, passed: error <= tolerance };
  }
  const dumped =
    dumpDirectory === undefined
      ? []
      : dumpAttention(path.resolve(io.cwd, dumpDirectory), built, inputs, output, strategy);
  const { plan } = timed;
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
      },
      backend: { name: backend.name, device: backend.capabilities.device },
      strategy,
      numChunks: plan.numChunks,
      numPartials: plan.numPartials,
      io: plan.io,
      planMicroseconds: timed.planMicroseconds,
      layerMicroseconds,
      scale: inputs.scale,
      ...(check === undefined ? {} : { check }),
      ...(dumpDirectory === undefined ? {} : { dump: dumped }),
    };
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    io.stdout(`${describeWorkload(workload, summary)}\n`);
    io.stdout(
      `backend ${backend.name} (${backend.capabilities.device}), strategy ${strategy}: ${plan.numChunks} chunks, ` +
        `${plan.numPartials} partials, ${formatBytes(plan.io.kvBytesRead)} KV read (${formatBytes(plan.io.uniqueKvBytes)} unique)\n`,
    );
    io.stdout(
      `attention ${formatMicroseconds(layerMicroseconds)} per layer (${timedRuns === 1 ? 'one run' : `median of ${timedRuns} runs, wall clock`}); ` +
        `planning ${formatMicroseconds(timed.planMicroseconds)}\n`,
    );
    if (check !== undefined) {
      io.stdout(
        `check: relative error ${check.relativeError.toExponential(2)} against the float64 direct reference ` +
          `(tolerance ${check.tolerance.toExponential(0)} for ${workload.dtype} KV): ${check.passed ? 'ok' : 'FAILED'}\n`,
      );
    }
    if (dumped.length > 0)
      io.stdout(`dump: wrote ${dumped.map((file) => path.relative(io.cwd, file) || file).join(', ')}\n`);
  }
  if (check !== undefined && !check.passed) {
    io.stderr(
      `deft attn: check failed on ${workload.name}: relative error ${check.relativeError} > ${check.tolerance}\n`,
    );
    return 1;
  }
  return 0;
}
