import type { AttentionShape, DType, PlanStrategy } from '@deft/core';
import { PLAN_STRATEGIES } from '@deft/core';
import { directTreeAttention } from '@deft/kernels-cpu/reference';
import type { CudaAttentionKernel, CudaBackend, CudaPlanOptions } from '@deft/kernels-cuda';
import { planTreeAttention } from '@deft/planner';
import { ATTENTION_TOLERANCE, randomTreeCase, relativeError, seededRandom } from '@deft/testing';

/** One kernel configuration the check runs. */
export interface CudaCheckVariant {
  readonly name: string;
  readonly kernel: CudaAttentionKernel;
  readonly shape: AttentionShape;
}

/** `tasks` or `units` (see `CudaPlanOptions.executor`). */
export type CudaCheckExecutor = NonNullable<CudaPlanOptions['executor']>;

/** One checked (tree, strategy, variant, executor). */
export interface CudaCheckCase {
  readonly description: string;
  readonly strategy: PlanStrategy;
  readonly executor: CudaCheckExecutor;
  /** Whether a second run gave bit-identical output. */
  readonly repeatable: boolean;
  readonly variant: string;
  readonly kernel: string;
  readonly relativeError: number;
  readonly passed: boolean;
}

/** Tensor-core shapes of the check: head dim 128 with groups 4 and 1, head dim 64 with group 8. */
const TENSOR_CORE_SHAPES: readonly { readonly label: string; readonly shape: AttentionShape }[] = [
  { label: 'd128 g4', shape: { numHeads: 8, numKvHeads: 2, headDim: 128, kvDtype: 'f16' } },
  { label: 'd64 g8', shape: { numHeads: 16, numKvHeads: 2, headDim: 64, kvDtype: 'f16' } },
  { label: 'd128 g1', shape: { numHeads: 3, numKvHeads: 3, headDim: 128, kvDtype: 'f16' } },
];

/** A CUDA-core configuration over two KV heads (f32 KV, or a head dim without tensor-core kernels, runs there). */
function cudaCoreVariant(
  kernel: 'auto' | 'scalar',
  kvDtype: 'f16' | 'f32',
  headDim: number,
  numHeads: number,
): CudaCheckVariant {
  return {
    name: `scalar ${kvDtype} d${headDim} g${numHeads / 2}`,
    kernel,
    shape: { numHeads, numKvHeads: 2, headDim, kvDtype },
  };
}

/**
 * The kernel configurations of the check: tensor cores at head dim 128 and 64 (`auto`: wgmma for the
 * task executor on compute capability 9.0, mma.sync elsewhere; `mma` forced), CUDA cores for fp16 and f32
 * at head dims that take every lane layout of the merge kernel.
 */
export const CUDA_CHECK_VARIANTS: readonly CudaCheckVariant[] = [
  ...(['auto', 'mma'] as const).flatMap((kernel) =>
    TENSOR_CORE_SHAPES.map(({ label, shape }) => ({ name: `${kernel} f16 ${label}`, kernel, shape })),
  ),
  // CUDA cores (fp16 forced, f32 by `auto`); the merge kernel's lane layouts: four values per lane (96),
  // pairs with a lane that straddles the row's end (98), one value at a time (7), eight per lane (160, 256).
  cudaCoreVariant('scalar', 'f16', 128, 8),
  cudaCoreVariant('auto', 'f32', 96, 4),
  cudaCoreVariant('auto', 'f32', 98, 4),
  cudaCoreVariant('auto', 'f16', 7, 2),
  cudaCoreVariant('auto', 'f32', 160, 4),
  cudaCoreVariant('auto', 'f16', 256, 8),
];

const KV_GRID = 2048;

/**
 * Checks every kernel configuration against the float64 direct reference on seeded random trees with
 * awkward sizes (1-token nodes, page boundaries ± 1, deep chains, 300 queries, speculative token
 * trees), every strategy, and a few chunk sizes. The output is poisoned with NaN before each run, so
 * unwritten elements fail (NaN never passes). Tolerances: 2e-3 (fp16 KV), 1e-5 (f32 KV).
 */
export async function runCudaCheck(
  backend: CudaBackend,
  options: {
    readonly seeds: number;
    readonly executors?: readonly CudaCheckExecutor[];
    readonly onCase?: (checked: CudaCheckCase) => void;
  },
): Promise<CudaCheckCase[]> {
  const cases: CudaCheckCase[] = [];
  for (let seed = 0; seed < options.seeds; seed++) {
    const tree = randomTreeCase(seed);
    const variant = CUDA_CHECK_VARIANTS[seed % CUDA_CHECK_VARIANTS.length]!;
    const { shape } = variant;
    const random = seededRandom(seed * 7 + 3);
    const rowLength = shape.numKvHeads * shape.headDim;
    const numQueries = tree.queries.nodes.length;
    const k = Float32Array.from(
      { length: tree.numSlots * rowLength },
      () => (Math.floor(random() * 2 * KV_GRID) - KV_GRID) / KV_GRID,
    );
    const v = Float32Array.from(
      { length: tree.numSlots * rowLength },
      () => (Math.floor(random() * 2 * KV_GRID) - KV_GRID) / KV_GRID,
    );
    const q = Float32Array.from(
      { length: numQueries * shape.numHeads * shape.headDim },
      () => random() * 4 - 2,
    );
    const scale = 1 / Math.sqrt(shape.headDim);
    const expected = directTreeAttention({
      view: tree.view,
      queries: tree.queries,
      q,
      k,
      v,
      ...shape,
      scale,
    });
    const storage = backend.createKVStorage({
      numLayers: 2,
      numPages: tree.numPages,
      pageSize: tree.pageSize,
      numKvHeads: shape.numKvHeads,
      headDim: shape.headDim,
      dtype: shape.kvDtype as DType,
    });
    const queryTensor = backend.createTensor({
      shape: [numQueries, shape.numHeads, shape.headDim],
      dtype: 'f32',
    });
    const out = backend.createTensor({ shape: [numQueries, shape.numHeads, shape.headDim], dtype: 'f32' });
    try {
      const allSlots = Int32Array.from({ length: tree.numSlots }, (_, index) => index);
      backend.writeKV(storage, 1, allSlots, k, v);
      backend.uploadTensor(queryTensor, q);
      const poison = new Float32Array(numQueries * shape.numHeads * shape.headDim).fill(Number.NaN);
      for (const strategy of PLAN_STRATEGIES) {
        const chunkSize = seed % 3 === 0 ? undefined : 1 + ((seed * 37) % 200);
        const plan = planTreeAttention(tree.view, tree.queries, {
          strategy,
          shape,
          ...(chunkSize === undefined ? {} : { chunkSize }),
        });
        for (const executor of options.executors ?? (['tasks', 'units'] as const)) {
          const prepared = backend.preparePlan(plan, shape, { kernel: variant.kernel, executor });
          try {
            backend.uploadTensor(out, poison);
            backend.treeAttention({ storage, layer: 1, plan: prepared, q: queryTensor, out, scale });
            const first = await backend.downloadTensor(out);
            const error = relativeError(first, expected);
            backend.uploadTensor(out, poison);
            backend.treeAttention({ storage, layer: 1, plan: prepared, q: queryTensor, out, scale });
            const second = await backend.downloadTensor(out);
            const firstBits = new Uint32Array(first.buffer, first.byteOffset, first.length);
            const secondBits = new Uint32Array(second.buffer, second.byteOffset, second.length);
            const repeatable = firstBits.every((bits, index) => bits === secondBits[index]);
            const checked: CudaCheckCase = {
              description: tree.description,
              strategy,
              executor,
              repeatable,
              variant: variant.name,
              kernel: prepared.schedule.kernel,
              relativeError: error,
              passed: error < ATTENTION_TOLERANCE[shape.kvDtype] && repeatable,
            };
            cases.push(checked);
            options.onCase?.(checked);
          } finally {
            prepared.dispose();
          }
        }
      }
    } finally {
      out.dispose();
      queryTensor.dispose();
      storage.dispose();
    }
  }
  return cases;
}
