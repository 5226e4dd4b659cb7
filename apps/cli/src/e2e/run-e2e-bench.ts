import type { DeviceTensor, DType, KVStorage, ModelBackend, PlanStrategy, PreparedPlan } from '@deft/core';
import type { CudaTiming } from '@deft/kernels-cuda';
import { type ForwardBatch, type LlamaConfig, LlamaModel } from '@deft/model';
import { planTreeAttention } from '@deft/planner';
import { type BuiltWorkload, buildWorkload } from '../workloads/build-workload.js';
import { workloadQueries } from '../workloads/parse-workload.js';
import type { Workload } from '../workloads/workload.js';
import { summarizeWorkload } from '../workloads/workload-summary.js';
import { matmulWeightCount } from './e2e-models.js';

/** What a device measured once per run, to build every row's floor from. */
export interface E2eFloors {
  /** Device copy bandwidth (read + written bytes per second), GB/s. */
  readonly copyGigabytesPerSecond: number;
  /** fp16 tensor-core rate, TFLOP/s. */
  readonly tensorTeraflops: number;
}

/** One decoding step of one workload with one attention strategy. */
export interface E2eRow {
  readonly workload: string;
  readonly strategy: PlanStrategy;
  /** Tokens the step evaluates (one query each). */
  readonly queries: number;
  /** Median GPU time of the step's forward pass, ms; CPU: the wall time. */
  readonly stepMilliseconds: number;
  /** Median host time to enqueue the step (JavaScript, addon and launches), ms. */
  readonly hostEnqueueMilliseconds: number;
  /**
   * True when enqueueing waited for the held stream (the launch queue filled): the step's GPU time then
   * includes host gaps and its host time the hold. False on the CPU.
   */
  readonly enqueueBlocked: boolean;
  /** Median wall time of a step run back to back: enqueue, GPU, token ids back on the host, ms. */
  readonly wallMilliseconds: number;
  /** Median time to plan and prepare the step's attention, ms (host; reused across layers). */
  readonly planMilliseconds: number;
  /** Median GPU time of the step's attention alone (every layer), ms; undefined on the CPU. */
  readonly attentionMilliseconds: number | undefined;
  /** `queries / wall time`: tokens evaluated per second. */
  readonly tokensPerSecond: number;
  readonly weightBytes: number;
  /** K and V bytes of every layer the queries see, each token once. */
  readonly uniqueKvBytes: number;
  /**
   * K and V bytes the strategy's attention reads (every layer), from the tree: the unique visible tokens for a
   * DeFT strategy (each read once), every query's path for `sequence`.
   */
  readonly kvReadBytes: number;
  /** Matmul and attention FLOPs of the step. */
  readonly stepFlops: number;
  /** `max((weights + unique KV) / copy bandwidth, FLOPs / tensor rate)`, ms; undefined without floors. */
  readonly floorMilliseconds: number | undefined;
  readonly floorBound: 'memory' | 'compute' | undefined;
}

/** Options of {@link runE2eBench}. */
export interface E2eBenchOptions {
  readonly config: LlamaConfig;
  readonly workloads: readonly Workload[];
  /** Strategies to time; the first is the DeFT strategy compared with `sequence`. */
  readonly strategies: readonly PlanStrategy[];
  /** Timed steps per row (median reported). */
  readonly runs: number;
  readonly weightDtype: DType;
  readonly kvDtype: DType;
  readonly seed: number;
  /** CUDA's timing helpers: GPU-only step times, the floors, random KV made on the device. */
  readonly cuda?: CudaTiming;
  /** Called after each row. */
  readonly onRow?: (row: E2eRow) => void;
}

/** The whole run: its floors and rows. */
export interface E2eResult {
  readonly floors: E2eFloors | undefined;
  readonly rows: readonly E2eRow[];
}

/** How long (µs) the stream is held while a step is enqueued behind it. */
const HOLD_MICROSECONDS = 60_000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A workload with the model's attention shape (heads, head dim, KV type) in place of its own. */
function withModelShape(workload: Workload, config: LlamaConfig, kvDtype: DType): Workload {
  return {
    ...workload,
    heads: config.numHeads,
    kvHeads: config.numKvHeads,
    headDim: config.headDim,
    dtype: kvDtype,
  };
}

/** The step's batch: one new token per query at its slot and absolute position. */
function stepInputs(built: BuiltWorkload, seed: number, vocabSize: number) {
  const { nodes } = built.workload;
  const depth = new Int32Array(nodes.length);
  const firstToken = new Int32Array(nodes.length);
  let cursor = 0;
  nodes.forEach((node, index) => {
    depth[index] = node.parent < 0 ? 0 : depth[node.parent]! + nodes[node.parent]!.tokens;
    firstToken[index] = cursor;
    cursor += node.tokens;
  });
  const pairs = workloadQueries(built.workload);
  const positions = Int32Array.from(pairs, ([node, position]) => depth[node]! + position);
  const slots = Int32Array.from(pairs, ([node, position]) => built.tokenSlots[firstToken[node]! + position]!);
  const tokens = Int32Array.from(pairs, (_, index) => (seed * 7919 + index * 104729) % vocabSize);
  return { tokens, positions, slots, pathTokens: positions.reduce((sum, position) => sum + position + 1, 0) };
}

/**
 * Times a whole decoding step of a Llama-shaped model with seeded random weights on each workload:
 * the workload's tree is its KV cache (random K/V), every query is a new token written into its slot,
 * and a step is the model's forward pass over all of them then the choice of each row's next token on
 * the device (only ids come back). Per row: the GPU time of the forward pass (enqueued behind a held
 * stream, so the host's enqueue cost is timed apart; the token choice counts in the wall time), the host
 * enqueue time, the wall time of whole steps back to back, the plan time, the attention time alone,
 * bytes, FLOPs and the floor measured in the same run. Every timed step repeats one batch, so the host's
 * uploads of token ids, positions and slots are cached after the first: a decoding step whose inputs
 * change pays them too.
 *
 * @example
 * ```ts
 * const result = await runE2eBench(backend, { config: E2E_MODELS['llama3-8b']!, workloads, strategies: ['deft-flatten', 'sequence'], runs: 10, weightDtype: 'f16', kvDtype: 'f16', seed: 1, cuda: backend.timing });
 * ```
 */
export async function runE2eBench(backend: ModelBackend, options: E2eBenchOptions): Promise<E2eResult> {
  const { config, cuda } = options;
  const floors: E2eFloors | undefined =
    cuda === undefined
      ? undefined
      : {
          copyGigabytesPerSecond: cuda.measureCopyBandwidth({ bytes: 1 << 30 }).gigabytesPerSecond,
          tensorTeraflops: cuda.measureTensorRate().teraflops,
        };
  const model = LlamaModel.createRandom(backend, config, {
    seed: options.seed,
    weightDtype: options.weightDtype,
  });
  const rows: E2eRow[] = [];
  try {
    const weightBytes = matmulWeightCount(config) * (options.weightDtype === 'f16' ? 2 : 4);
    for (const source of options.workloads) {
      const workload = withModelShape(source, config, options.kvDtype);
      const built = buildWorkload(workload);
      const summary = summarizeWorkload(workload);
      const perToken = summary.kvBytesPerToken * config.numLayers;
      const inputs = stepInputs(built, options.seed, config.vocabSize);
      const storage = model.createKVStorage({
        numPages: Math.ceil(built.numSlots / workload.pageSize),
        pageSize: workload.pageSize,
        dtype: options.kvDtype,
      });
      try {
        if (cuda !== undefined) cuda.fillKVStorage(storage, options.seed);
        for (const strategy of options.strategies) {
          const row = await timeStep(model, storage, built, inputs, strategy, options);
          const attentionFlops = 4 * config.numHeads * config.headDim * inputs.pathTokens * config.numLayers;
          const stepFlops = 2 * inputs.tokens.length * matmulWeightCount(config) + attentionFlops;
          const uniqueKvBytes = summary.uniqueVisibleTokens * perToken;
          const kvReadBytes =
            (strategy === 'sequence' ? summary.pathTokens : summary.uniqueVisibleTokens) * perToken;
          let floorMilliseconds: number | undefined;
          let floorBound: E2eRow['floorBound'];
          if (floors !== undefined) {
            const memory = (weightBytes + uniqueKvBytes) / (floors.copyGigabytesPerSecond * 1e6);
            const compute = stepFlops / (floors.tensorTeraflops * 1e9);
            floorMilliseconds = Math.max(memory, compute);
            floorBound = memory >= compute ? 'memory' : 'compute';
          }
          const result: E2eRow = {
            workload: source.name,
            strategy,
            queries: inputs.tokens.length,
            ...row,
            tokensPerSecond: (inputs.tokens.length * 1000) / row.wallMilliseconds,
            weightBytes,
            uniqueKvBytes,
            kvReadBytes,
            stepFlops,
            floorMilliseconds,
            floorBound,
          };
          rows.push(result);
          options.onRow?.(result);
        }
      } finally {
        storage.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  return { floors, rows };
}

type StepTimes = Pick<
  E2eRow,
  | 'stepMilliseconds'
  | 'hostEnqueueMilliseconds'
  | 'enqueueBlocked'
  | 'wallMilliseconds'
  | 'planMilliseconds'
  | 'attentionMilliseconds'
>;

async function timeStep(
  model: LlamaModel,
  storage: KVStorage,
  built: BuiltWorkload,
  inputs: ReturnType<typeof stepInputs>,
  strategy: PlanStrategy,
  options: E2eBenchOptions,
): Promise<StepTimes> {
  const { backend } = model;
  const { cuda, runs } = options;
  const shape = model.attentionShape(options.kvDtype);
  const planTimes: number[] = [];
  let prepared: PreparedPlan | undefined;
  const plan = (): PreparedPlan => {
    const before = performance.now();
    const next = backend.preparePlan(
      planTreeAttention(built.view, built.queries, { strategy, shape }),
      shape,
    );
    planTimes.push(performance.now() - before);
    return next;
  };
  const release: { dispose(): void }[] = [];
  try {
    // Plan timing: every run plans anew (as each decoding step does); the last plan is kept.
    for (let run = 0; run < Math.max(3, runs); run++) {
      prepared?.dispose();
      prepared = plan();
    }
    const batch: ForwardBatch = { ...inputs, storage, plan: prepared! };
    const step = async (): Promise<void> => {
      const pass = model.enqueueForward(batch);
      try {
        await backend.ops.argmax(pass.logits);
      } finally {
        pass.dispose();
      }
    };
    // Warm-up (allocations, first launches), then back-to-back steps for the wall time.
    await step();
    const wall: number[] = [];
    for (let run = 0; run < runs; run++) {
      const before = performance.now();
      await step();
      wall.push(performance.now() - before);
    }
    if (cuda === undefined) {
      return {
        stepMilliseconds: median(wall),
        hostEnqueueMilliseconds: Number.NaN,
        enqueueBlocked: false,
        wallMilliseconds: median(wall),
        planMilliseconds: median(planTimes),
        attentionMilliseconds: undefined,
      };
    }
    const start = cuda.createEvent();
    const end = cuda.createEvent();
    release.push(start, end);
    const gpu: number[] = [];
    const host: number[] = [];
    for (let run = 0; run < runs; run++) {
      cuda.holdStream(HOLD_MICROSECONDS);
      const before = performance.now();
      start.record();
      const pass = model.enqueueForward(batch);
      end.record();
      host.push(performance.now() - before);
      // The token choice waits for the stream; its few microseconds count in the wall time only.
      await backend.ops.argmax(pass.logits);
      pass.dispose();
      gpu.push(end.millisecondsSince(start));
    }
    const attention = timeAttention(model, storage, prepared!, cuda, runs, release);
    return {
      stepMilliseconds: median(gpu),
      hostEnqueueMilliseconds: median(host),
      enqueueBlocked: Math.max(...host) >= (0.9 * HOLD_MICROSECONDS) / 1000,
      wallMilliseconds: median(wall),
      planMilliseconds: median(planTimes),
      attentionMilliseconds: attention,
    };
  } finally {
    prepared?.dispose();
    for (const object of release) object.dispose();
  }
}

/** GPU time of the plan's attention over every layer (random q), ms. */
function timeAttention(
  model: LlamaModel,
  storage: KVStorage,
  prepared: PreparedPlan,
  cuda: CudaTiming,
  runs: number,
  release: { dispose(): void }[],
): number {
  const { backend, config } = model;
  const rows = prepared.plan.numQueries;
  const q: DeviceTensor = backend.createTensor({
    shape: [rows, config.numHeads, config.headDim],
    dtype: 'f32',
  });
  const out: DeviceTensor = backend.createTensor({
    shape: [rows, config.numHeads, config.headDim],
    dtype: 'f32',
  });
  release.push(q, out);
  backend.ops.fillUniform?.(q, 7, -1, 1);
  const start = cuda.createEvent();
  const end = cuda.createEvent();
  release.push(start, end);
  const times: number[] = [];
  for (let run = -1; run < runs; run++) {
    cuda.holdStream(HOLD_MICROSECONDS / 4);
    start.record();
    for (let layer = 0; layer < config.numLayers; layer++) {
      backend.treeAttention({ storage, layer, plan: prepared, q, out, scale: 1 / Math.sqrt(config.headDim) });
    }
    end.record();
    const milliseconds = end.millisecondsSince(start);
    if (run >= 0) times.push(milliseconds);
  }
  return median(times);
}
