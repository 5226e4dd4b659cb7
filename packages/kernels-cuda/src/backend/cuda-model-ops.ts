import {
  type DeviceTensor,
  InvalidArgumentError,
  type KVStorage,
  type ModelOps,
  type RopeOptions,
  shapeSize,
  type TopKResult,
} from '@deft/core';
import {
  checkAddRmsNorm,
  checkMatmulGroup,
  checkMatmulOperands,
  checkRmsNormOperands,
  checkRopeOperands,
  checkSlotCopy,
  checkTemperature,
  checkTopK,
  type MatmulShape,
  type MatrixView,
  matrixOf,
  requireDistinct,
  requireEqual,
  requireF32,
  requireIndices,
  topKHost,
} from '@deft/core/backend-kit';
import { assertFinite, assertInteger } from '@deft/core/validate';
import type { CudaAddon, NativeDtype } from '../native/load-addon.js';
import { callNative } from '../native/native-error.js';
import type { CudaKVStorage } from './cuda-kv-storage.js';
import type { CudaTensor } from './cuda-tensor.js';

/** The model ops of the CUDA backend, plus a seeded device fill (benchmark weights made where they live). */
export interface CudaModelOps extends ModelOps {
  /**
   * Fills a tensor with seeded uniform values in `[low, high)`, generated on the device (f32 or f16). The
   * same seed gives the same values for a tensor of the same size.
   */
  fillUniform(tensor: DeviceTensor, seed: number, low: number, high: number): void;
}

/** How the CUDA model ops reach the backend's objects; the resolvers throw for foreign or disposed ones. */
export interface CudaModelOpsAccess {
  readonly addon: CudaAddon;
  readonly tensor: (argument: string, tensor: unknown) => CudaTensor;
  readonly storage: (storage: KVStorage) => CudaKVStorage;
}

/** Most matmuls one native call launches together (the addon's group size). */
const MATMUL_GROUP_LIMIT = 4;

/** Rows of `topK` picked on the device at once; larger `k` sorts on the host (a full sort is not a decode need). */
const DEVICE_TOP_K_LIMIT = 256;

const ELEMENTWISE_ADD = 0;
const ELEMENTWISE_SWIGLU = 1;

function dtypeCode(tensor: CudaTensor): NativeDtype {
  return tensor.dtype === 'f16' ? 1 : 0;
}

/** Throws unless a weight-like operand is an f32 or f16 tensor (the CUDA backend holds no quantized weights). */
function requireDense(tensor: CudaTensor, argument: string): void {
  if (tensor.dtype !== 'f32' && tensor.dtype !== 'f16') {
    throw new InvalidArgumentError(`${argument} must be an f32 or f16 tensor on the CUDA backend`, {
      argument,
      expected: 'f32 | f16',
      actual: tensor.dtype,
    });
  }
}

/**
 * The model ops of the CUDA backend ({@link ModelOps}) on its tensors: each op validates every operand
 * (the same checks as the other backends), then enqueues its kernel on the backend's stream without
 * waiting. `matmul` runs fp16 weights on tensor cores (activations rounded to fp16, f32 accumulation)
 * and f32 weights on CUDA cores in f32; `argmax` and `topK` pick on the device and copy back only the
 * picks. Host index arrays (token ids, positions, rows) are uploaded once per distinct content.
 *
 * @example
 * ```ts
 * const backend = createCudaBackend();
 * backend.ops.matmul(x, weight, out);
 * const tokens = await backend.ops.argmax(logits);
 * ```
 */
export function createCudaModelOps(access: CudaModelOpsAccess): CudaModelOps {
  const { addon } = access;
  const own = access.tensor;

  const elementwise = (
    op: number,
    a: DeviceTensor,
    b: DeviceTensor,
    out: DeviceTensor,
    names: readonly [string, string],
  ): void => {
    const first = own(names[0], a);
    const second = own(names[1], b);
    const target = own('out', out);
    requireF32(first, names[0]);
    requireF32(second, names[1]);
    requireF32(target, 'out');
    requireEqual(names[1], 'size', first.size, second.size, second);
    requireEqual('out', 'size', first.size, target.size, target);
    callNative('elementwise', () =>
      addon.elementwise(op, first.handle, second.handle, target.handle, first.size),
    );
  };

  /** `out[r, :] = source[indices[r], :]`: embedding (an f32 or f16 table) and gatherRows (f32, not aliasing out). */
  const gather = (
    sourceName: 'table' | 'x',
    source: DeviceTensor,
    indexName: string,
    indices: Int32Array,
    out: DeviceTensor,
    operation: 'embedding' | 'gatherRows',
  ): void => {
    const input = own(sourceName, source);
    const target = own('out', out);
    if (operation === 'embedding') requireDense(input, sourceName);
    else requireF32(input, sourceName);
    requireF32(target, 'out');
    const view = matrixOf(input, sourceName);
    const outView = matrixOf(target, 'out');
    requireEqual('out', 'rows', indices.length, outView.rows, target);
    requireEqual('out', 'row width', view.columns, outView.columns, target);
    if (operation === 'gatherRows') requireDistinct(input, target, sourceName, 'out');
    requireIndices(indexName, indices, view.rows);
    callNative(operation, () =>
      addon.gatherRows(input.handle, dtypeCode(input), view.rows, indices, target.handle, view.columns),
    );
  };

  /** The operands of a row-wise op (softmax, log-softmax): f32 `x` and an `out` of its size (may be `x`). */
  const rowOperands = (x: DeviceTensor, out: DeviceTensor) => {
    const input = own('x', x);
    const target = own('out', out);
    requireF32(input, 'x');
    requireF32(target, 'out');
    requireEqual('out', 'size', input.size, target.size, target);
    return { input, target, view: matrixOf(input, 'x') };
  };

  const pick = async (x: DeviceTensor, k: number, withValues: boolean): Promise<TopKResult> => {
    const source = own('x', x);
    requireF32(source, 'x');
    const view = matrixOf(source, 'x');
    checkTopK(k, view.columns);
    if (k > DEVICE_TOP_K_LIMIT) {
      const values = new Float32Array(source.size);
      callNative('topK', () => addon.download(source.handle, 0, values));
      return topKHost(values, view.rows, view.columns, k);
    }
    const indices = new Int32Array(view.rows * k);
    const values = withValues ? new Float32Array(view.rows * k) : null;
    callNative('topK', () => addon.topK(source.handle, view.rows, view.columns, k, indices, values));
    return { indices, values: values ?? new Float32Array(0) };
  };

  /** Enqueues checked matmuls of `x` whose weights share a dtype (at most MATMUL_GROUP_LIMIT): one native call. */
  const runMatmuls = (
    x: CudaTensor,
    weights: readonly CudaTensor[],
    outs: readonly CudaTensor[],
    shape: MatmulShape,
    shapes: readonly MatmulShape[] = [shape],
  ): void => {
    callNative(weights.length > 1 ? 'matmulGroup' : 'matmul', () =>
      addon.matmul(
        x.handle,
        Float64Array.from(weights, (weight) => weight.handle),
        dtypeCode(weights[0]!),
        Float64Array.from(outs, (out) => out.handle),
        shape.m,
        shape.k,
        Int32Array.from(shapes, (each) => each.n),
      ),
    );
  };

  /** Enqueues a checked RMSNorm over `groups`, first adding `residual` into `x` when given. */
  const enqueueNorm = (
    operation: string,
    x: CudaTensor,
    residual: CudaTensor | null,
    weight: CudaTensor,
    out: CudaTensor,
    groups: MatrixView,
    epsilon: number,
  ): void => {
    callNative(operation, () =>
      addon.rmsNorm(
        x.handle,
        weight.handle,
        dtypeCode(weight),
        out.handle,
        groups.rows,
        groups.columns,
        epsilon,
        residual?.handle ?? null,
      ),
    );
  };

  return {
    embedding(table, tokens, out) {
      gather('table', table, 'tokens', tokens, out, 'embedding');
    },

    matmul(x, weight, out) {
      const input = own('x', x);
      const matrix = own('weight', weight);
      const target = own('out', out);
      requireDense(matrix, 'weight');
      const shape = checkMatmulOperands(input, matrix, target);
      runMatmuls(input, [matrix], [target], shape);
    },

    matmulGroup(x, weights, outs) {
      const input = own('x', x);
      const shapes = checkMatmulGroup(input, weights, outs);
      const matrices = weights.map((weight, index) => own(`weights[${index}]`, weight));
      const targets = outs.map((out, index) => own(`outs[${index}]`, out));
      for (const [index, matrix] of matrices.entries()) requireDense(matrix, `weights[${index}]`);
      // One native call per run of at most MATMUL_GROUP_LIMIT weights of one dtype.
      let start = 0;
      while (start < matrices.length) {
        let end = start + 1;
        while (
          end < matrices.length &&
          end - start < MATMUL_GROUP_LIMIT &&
          matrices[end]!.dtype === matrices[start]!.dtype
        )
          end++;
        runMatmuls(
          input,
          matrices.slice(start, end),
          targets.slice(start, end),
          shapes[0]!,
          shapes.slice(start, end),
        );
        start = end;
      }
    },

    rmsNorm(x, weight, out, epsilon) {
      const input = own('x', x);
      const scale = own('weight', weight);
      const target = own('out', out);
      requireDense(scale, 'weight');
      const groups = checkRmsNormOperands(input, scale, target, epsilon);
      enqueueNorm('rmsNorm', input, null, scale, target, groups, epsilon);
    },

    addRmsNorm(x, residual, weight, out, epsilon) {
      const input = own('x', x);
      const added = own('residual', residual);
      const scale = own('weight', weight);
      const target = own('out', out);
      requireDense(scale, 'weight');
      const groups = checkAddRmsNorm(input, added, scale, target, epsilon);
      enqueueNorm('addRmsNorm', input, added, scale, target, groups, epsilon);
    },

    rope(x, positions, options: RopeOptions) {
      const target = own('x', x);
      const { numHeads, headDim, style } = checkRopeOperands(target, positions, options);
      callNative('rope', () =>
        addon.rope(
          target.handle,
          positions,
          numHeads,
          headDim,
          options.theta,
          style === 'half' ? 1 : 0,
          options.frequencyFactors ?? null,
        ),
      );
    },

    swiglu(gate, up, out) {
      elementwise(ELEMENTWISE_SWIGLU, gate, up, out, ['gate', 'up']);
    },

    add(a, b, out) {
      elementwise(ELEMENTWISE_ADD, a, b, out, ['a', 'b']);
    },

    softmax(x, out, temperature = 1) {
      const { input, target, view } = rowOperands(x, out);
      checkTemperature(temperature);
      callNative('softmax', () =>
        addon.softmax(input.handle, target.handle, view.rows, view.columns, temperature, 0),
      );
    },

    logSoftmax(x, out) {
      const { input, target, view } = rowOperands(x, out);
      callNative('logSoftmax', () =>
        addon.softmax(input.handle, target.handle, view.rows, view.columns, 1, 1),
      );
    },

    gatherRows(x, rows, out) {
      gather('x', x, 'rows', rows, out, 'gatherRows');
    },

    async argmax(x) {
      return (await pick(x, 1, false)).indices;
    },

    async topK(x, k) {
      return pick(x, k, true);
    },

    copyKVSlots(storage, source, target) {
      const kv = access.storage(storage);
      checkSlotCopy(source, target, kv.numSlots);
      callNative('copyKVSlots', () => addon.copySlots(kv.handle, source, target));
    },

    fillUniform(tensor, seed, low, high) {
      const target = own('tensor', tensor);
      requireDense(target, 'tensor');
      assertInteger('seed', seed, 0);
      assertFinite('low', low);
      assertFinite('high', high);
      if (!(high > low)) {
        throw new InvalidArgumentError('high must be greater than low', {
          argument: 'high',
          expected: `> ${low}`,
          actual: high,
        });
      }
      callNative('fillUniform', () =>
        addon.fillUniform(target.handle, dtypeCode(target), shapeSize(target.shape), seed, low, high),
      );
    },
  };
}
