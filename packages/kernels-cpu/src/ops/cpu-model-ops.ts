import {
  BLOCK_QUANTIZATIONS,
  type BlockQuantization,
  type DeviceTensor,
  type KVStorage,
  type KVStorageDescriptor,
  type ModelOps,
  type RopeOptions,
  shapeSize,
  type TopKResult,
} from '@deft/core';
import {
  argmaxHost,
  checkAddRmsNorm,
  checkMatmulGroup,
  checkMatmulOperands,
  checkQuantizedWeight,
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
import { addHost, swigluHost } from './elementwise.js';
import { embeddingHost, gatherRowsHost } from './gather.js';
import { matmulHost } from './matmul.js';
import type { WeightData } from './read-row-as-f32.js';
import { rmsNormHost } from './rms-norm.js';
import { ropeHost } from './rope.js';
import { logSoftmaxHost, softmaxHost } from './softmax.js';

/**
 * Resolves a tensor of the CPU backend to its host array: `Float32Array` for f32, `Uint16Array` of
 * binary16 bits for f16. Throws `InvalidArgumentError` for a tensor of another backend and
 * `DisposedError` for a disposed one.
 */
export type CpuTensorData = (tensor: DeviceTensor, argument: string) => Float32Array | Uint16Array;

/** The host arrays of a CPU KV store: per layer, K and V `[numSlots, numKvHeads, headDim]`. */
export interface CpuKVLayers {
  readonly descriptor: KVStorageDescriptor;
  keys(layer: number): Float32Array | Uint16Array;
  values(layer: number): Float32Array | Uint16Array;
}

/** How the CPU model ops reach a backend's memory. The resolvers throw for foreign or disposed objects. */
export interface CpuOperandAccess {
  readonly tensorData: CpuTensorData;
  readonly kvLayers: (storage: KVStorage, argument: string) => CpuKVLayers;
  /** A weight's memory, GGUF blocks included (matmul's weight, embedding's table); `tensorData` when absent. */
  readonly weightData?: (tensor: DeviceTensor, argument: string) => WeightData;
  /** Wraps checked GGUF blocks as a tensor of the backend; without it the ops hold no quantized weights. */
  readonly wrapQuantizedWeight?: (
    shape: readonly [number, number],
    quantization: BlockQuantization,
    blocks: Uint8Array,
  ) => DeviceTensor;
}

function f32Data(data: CpuTensorData, tensor: DeviceTensor, argument: string): Float32Array {
  requireF32(tensor, argument);
  return data(tensor, argument) as Float32Array;
}

/**
 * The model ops of the CPU reference backend over host arrays: exact and simple (float64 sums), the
 * oracle the GPU backends' ops are tested against. Every op validates all operands before it writes.
 *
 * @param access how the backend maps its tensors and KV stores to host arrays
 * @throws InvalidArgumentError / DisposedError from each op, as {@link ModelOps} documents.
 * @example
 * ```ts
 * const ops = createCpuModelOps({ tensorData: (tensor) => ownTensor(tensor).data, kvLayers: (storage) => ownStorage(storage) });
 * ops.matmul(x, weight, out);
 * ```
 */
export function createCpuModelOps(access: CpuOperandAccess): ModelOps {
  const data = access.tensorData;
  const weightData = access.weightData ?? data;
  const wrap = access.wrapQuantizedWeight;
  const quantized =
    wrap === undefined
      ? {}
      : {
          quantizations: BLOCK_QUANTIZATIONS,
          createQuantizedWeight(
            shape: readonly [number, number],
            quantization: BlockQuantization,
            blocks: Uint8Array,
          ): DeviceTensor {
            checkQuantizedWeight(shape, quantization, blocks);
            return wrap(shape, quantization, blocks);
          },
        };
  /** Runs a checked matmul. */
  const runMatmul = (x: DeviceTensor, weight: DeviceTensor, out: DeviceTensor, shape: MatmulShape): void => {
    matmulHost(
      f32Data(data, x, 'x'),
      weightData(weight, 'weight'),
      f32Data(data, out, 'out'),
      shape.m,
      shape.k,
      shape.n,
    );
  };
  /** Runs a checked RMSNorm over `groups` (rows of the weight's width). */
  const runRmsNorm = (
    x: DeviceTensor,
    weight: DeviceTensor,
    out: DeviceTensor,
    groups: MatrixView,
    epsilon: number,
  ): void => {
    rmsNormHost(
      f32Data(data, x, 'x'),
      data(weight, 'weight'),
      f32Data(data, out, 'out'),
      groups.rows,
      groups.columns,
      epsilon,
    );
  };
  return {
    ...quantized,
    embedding(table, tokens, out) {
      const tableView = matrixOf(table, 'table');
      const outView = matrixOf(out, 'out');
      requireF32(out, 'out');
      requireEqual('out', 'rows', tokens.length, outView.rows, out);
      requireEqual('out', 'row width', tableView.columns, outView.columns, out);
      requireIndices('tokens', tokens, tableView.rows);
      embeddingHost(weightData(table, 'table'), tokens, f32Data(data, out, 'out'), tableView.columns);
    },

    matmul(x, weight, out) {
      runMatmul(x, weight, out, checkMatmulOperands(x, weight, out));
    },

    matmulGroup(x, weights, outs) {
      const shapes = checkMatmulGroup(x, weights, outs);
      weights.forEach((weight, index) => {
        runMatmul(x, weight, outs[index]!, shapes[index]!);
      });
    },

    rmsNorm(x, weight, out, epsilon) {
      runRmsNorm(x, weight, out, checkRmsNormOperands(x, weight, out, epsilon), epsilon);
    },

    addRmsNorm(x, residual, weight, out, epsilon) {
      const groups = checkAddRmsNorm(x, residual, weight, out, epsilon);
      const xData = f32Data(data, x, 'x');
      addHost(xData, f32Data(data, residual, 'residual'), xData);
      runRmsNorm(x, weight, out, groups, epsilon);
    },

    rope(x, positions, options: RopeOptions) {
      const { rows, numHeads, headDim, style } = checkRopeOperands(x, positions, options);
      ropeHost(
        f32Data(data, x, 'x'),
        positions,
        rows,
        numHeads,
        headDim,
        options.theta,
        style,
        options.frequencyFactors,
      );
    },

    swiglu(gate, up, out) {
      for (const [tensor, name] of [
        [gate, 'gate'],
        [up, 'up'],
        [out, 'out'],
      ] as const)
        requireF32(tensor, name);
      requireEqual('up', 'size', shapeSize(gate.shape), shapeSize(up.shape), up);
      requireEqual('out', 'size', shapeSize(gate.shape), shapeSize(out.shape), out);
      swigluHost(f32Data(data, gate, 'gate'), f32Data(data, up, 'up'), f32Data(data, out, 'out'));
    },

    add(a, b, out) {
      for (const [tensor, name] of [
        [a, 'a'],
        [b, 'b'],
        [out, 'out'],
      ] as const)
        requireF32(tensor, name);
      requireEqual('b', 'size', shapeSize(a.shape), shapeSize(b.shape), b);
      requireEqual('out', 'size', shapeSize(a.shape), shapeSize(out.shape), out);
      addHost(f32Data(data, a, 'a'), f32Data(data, b, 'b'), f32Data(data, out, 'out'));
    },

    softmax(x, out, temperature = 1) {
      const view = matrixOf(x, 'x');
      requireF32(x, 'x');
      requireF32(out, 'out');
      requireEqual('out', 'size', shapeSize(x.shape), shapeSize(out.shape), out);
      checkTemperature(temperature);
      softmaxHost(f32Data(data, x, 'x'), f32Data(data, out, 'out'), view.rows, view.columns, temperature);
    },

    logSoftmax(x, out) {
      const view = matrixOf(x, 'x');
      requireF32(x, 'x');
      requireF32(out, 'out');
      requireEqual('out', 'size', shapeSize(x.shape), shapeSize(out.shape), out);
      logSoftmaxHost(f32Data(data, x, 'x'), f32Data(data, out, 'out'), view.rows, view.columns);
    },

    gatherRows(x, rows, out) {
      const view = matrixOf(x, 'x');
      const outView = matrixOf(out, 'out');
      requireF32(x, 'x');
      requireF32(out, 'out');
      requireEqual('out', 'rows', rows.length, outView.rows, out);
      requireEqual('out', 'row width', view.columns, outView.columns, out);
      requireDistinct(x, out, 'x', 'out');
      requireIndices('rows', rows, view.rows);
      gatherRowsHost(f32Data(data, x, 'x'), rows, f32Data(data, out, 'out'), view.columns);
    },

    async argmax(x) {
      const view = matrixOf(x, 'x');
      return argmaxHost(f32Data(data, x, 'x'), view.rows, view.columns);
    },

    async topK(x, k): Promise<TopKResult> {
      const view = matrixOf(x, 'x');
      const xData = f32Data(data, x, 'x');
      checkTopK(k, view.columns);
      return topKHost(xData, view.rows, view.columns, k);
    },

    copyKVSlots(storage, source, target) {
      const layers = access.kvLayers(storage, 'storage');
      const { numPages, pageSize, numLayers, numKvHeads, headDim } = layers.descriptor;
      const numSlots = numPages * pageSize;
      checkSlotCopy(source, target, numSlots);
      const rowSize = numKvHeads * headDim;
      for (let layer = 0; layer < numLayers; layer++) {
        for (const array of [layers.keys(layer), layers.values(layer)]) {
          for (let index = 0; index < source.length; index++) {
            const from = source[index]! * rowSize;
            array.copyWithin(target[index]! * rowSize, from, from + rowSize);
          }
        }
      }
    },
  };
}
