import type { RopeOptions, RopeStyle } from '../backend/model-ops.js';
import { InvalidArgumentError } from '../errors/invalid-argument-error.js';
import {
  BLOCK_QUANTIZATIONS,
  type BlockQuantization,
  blockQuantizationLayout,
  isBlockQuantization,
  quantizedByteLength,
} from '../tensor/block-quantization.js';
import { type DeviceTensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { assertFinite, assertInteger } from './assert.js';

// Operand checks shared by every backend's model ops (see ModelOps in ../backend/model-ops.ts).

/** The matrix view `[rows, columns]` of a tensor: its first dimension, and the product of the rest. */
export interface MatrixView {
  readonly rows: number;
  readonly columns: number;
}

/** Reads a tensor of rank `>= 1` as a matrix; throws `InvalidArgumentError` for a scalar. */
export function matrixOf(tensor: DeviceTensor, argument: string): MatrixView {
  const rows = tensor.shape[0];
  if (rows === undefined) {
    throw new InvalidArgumentError(`${argument} must have at least one dimension, got shape []`, {
      argument,
      expected: 'a tensor of rank >= 1',
      actual: formatShape(tensor.shape),
    });
  }
  return { rows, columns: rows === 0 ? shapeSize(tensor.shape.slice(1)) : shapeSize(tensor.shape) / rows };
}

/** Throws `InvalidArgumentError` unless the tensor is f32 and not quantized (activations and outputs always are). */
export function requireF32(tensor: DeviceTensor, argument: string): void {
  if (tensor.quantization !== undefined) {
    throw new InvalidArgumentError(
      `${argument} is a ${tensor.quantization} weight; only matmul's weight and embedding's table may be quantized`,
      { argument, expected: 'f32', actual: tensor.quantization },
    );
  }
  if (tensor.dtype !== 'f32') {
    throw new InvalidArgumentError(
      `${argument} must be an f32 tensor, got ${tensor.dtype}; allocate activations as f32`,
      {
        argument,
        expected: 'f32',
        actual: tensor.dtype,
      },
    );
  }
}

/** Throws `InvalidArgumentError` unless `actual` equals `expected` (a dimension or a size). */
export function requireEqual(
  argument: string,
  what: string,
  expected: number,
  actual: number,
  tensor: DeviceTensor,
): void {
  if (expected !== actual) {
    throw new InvalidArgumentError(
      `${argument} has ${what} ${actual} (shape ${formatShape(tensor.shape)}) but ${expected} is required; pass a tensor of the matching shape`,
      { argument, expected, actual },
    );
  }
}

/** Throws `InvalidArgumentError` if two distinct arguments are the same tensor where aliasing is not allowed. */
export function requireDistinct(
  first: DeviceTensor,
  second: DeviceTensor,
  firstName: string,
  secondName: string,
): void {
  if (first === second) {
    throw new InvalidArgumentError(
      `${secondName} must not be the same tensor as ${firstName}; allocate a separate output`,
      {
        argument: secondName,
        expected: `a tensor other than ${firstName}`,
        actual: 'the same tensor',
      },
    );
  }
}

/** Throws `InvalidArgumentError` unless every entry of `indices` is an integer in `[0, limit)`. */
export function requireIndices(argument: string, indices: Int32Array, limit: number): void {
  if (!(indices instanceof Int32Array)) {
    throw new InvalidArgumentError(`${argument} must be an Int32Array`, {
      argument,
      expected: 'Int32Array',
      actual: typeof indices,
    });
  }
  for (let index = 0; index < indices.length; index++) {
    const value = indices[index]!;
    if (value < 0 || value >= limit) {
      throw new InvalidArgumentError(`${argument}[${index}] = ${value} is out of range [0, ${limit})`, {
        argument: `${argument}[${index}]`,
        expected: `0 <= value < ${limit}`,
        actual: value,
      });
    }
  }
}

/**
 * Checks the weight of `ModelOps.rmsNorm` against `x`'s matrix view `[M, D]`: `[D]`, or `[G]` with `G`
 * dividing `D` (each `G`-wide group normalised on its own). Returns the rows and width the norm runs
 * over: `[M · D / G, G]`, the same memory read as narrower rows.
 *
 * @throws InvalidArgumentError when the weight's size does not divide the row width.
 */
export function rmsNormGroups(view: MatrixView, weight: DeviceTensor): MatrixView {
  const size = shapeSize(weight.shape);
  if (size < 1 || view.columns % size !== 0) {
    throw new InvalidArgumentError(
      `weight has size ${size} (shape ${formatShape(weight.shape)}) but must be the row width ${view.columns} or divide it`,
      { argument: 'weight', expected: `a divisor of ${view.columns}`, actual: size },
    );
  }
  return { rows: (view.rows * view.columns) / size, columns: size };
}

/** The checked shape of one matmul: `x` `[m, k]`, `weight` `[n, k]`, `out` `[m, n]`. */
export interface MatmulShape {
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

/**
 * Checks the operands of `ModelOps.matmul` the same way on every backend: f32 `x` and `out`, the
 * weight's inner dimension, `out` `[M, N]`, `out` not `x` (which weight dtypes run is the backend's
 * check).
 *
 * @throws InvalidArgumentError naming the first bad operand.
 */
export function checkMatmulOperands(x: DeviceTensor, weight: DeviceTensor, out: DeviceTensor): MatmulShape {
  const xView = matrixOf(x, 'x');
  const weightView = matrixOf(weight, 'weight');
  const outView = matrixOf(out, 'out');
  requireF32(x, 'x');
  requireF32(out, 'out');
  requireEqual('weight', 'inner dimension', xView.columns, weightView.columns, weight);
  requireEqual('out', 'rows', xView.rows, outView.rows, out);
  requireEqual('out', 'columns', weightView.rows, outView.columns, out);
  requireDistinct(x, out, 'x', 'out');
  return { m: xView.rows, k: xView.columns, n: weightView.rows };
}

/**
 * Checks the operands of `ModelOps.matmulGroup`: as many `outs` as `weights` (at least one), no tensor
 * twice among the outs, and each matmul as {@link checkMatmulOperands} does.
 *
 * @throws InvalidArgumentError naming the first bad operand.
 */
export function checkMatmulGroup(
  x: DeviceTensor,
  weights: readonly DeviceTensor[],
  outs: readonly DeviceTensor[],
): MatmulShape[] {
  if (
    !Array.isArray(weights) ||
    !Array.isArray(outs) ||
    weights.length === 0 ||
    weights.length !== outs.length
  ) {
    throw new InvalidArgumentError('matmulGroup needs as many outs as weights, at least one', {
      argument: 'outs',
      expected: Array.isArray(weights) && weights.length > 0 ? weights.length : '>= 1',
      actual: Array.isArray(outs) ? outs.length : typeof outs,
    });
  }
  return weights.map((weight, index) => {
    const out = outs[index]!;
    for (let earlier = 0; earlier < index; earlier++) {
      requireDistinct(outs[earlier]!, out, `outs[${earlier}]`, `outs[${index}]`);
    }
    return checkMatmulOperands(x, weight, out);
  });
}

/**
 * Checks the operands of `ModelOps.rmsNorm` (and the norm of `addRmsNorm`): f32 `x` and `out` of one size,
 * the weight as {@link rmsNormGroups} takes it and a finite epsilon. Returns the rows and width the norm
 * runs over.
 *
 * @throws InvalidArgumentError naming the first bad operand.
 */
export function checkRmsNormOperands(
  x: DeviceTensor,
  weight: DeviceTensor,
  out: DeviceTensor,
  epsilon: number,
): MatrixView {
  requireF32(x, 'x');
  requireF32(out, 'out');
  // A weight narrower than the row normalises each group of the row on its own (per-head norms).
  const groups = rmsNormGroups(matrixOf(x, 'x'), weight);
  requireEqual('out', 'size', shapeSize(x.shape), shapeSize(out.shape), out);
  assertFinite('epsilon', epsilon);
  return groups;
}

/**
 * Checks the operands of `ModelOps.addRmsNorm`: f32 `x`, `residual` and `out` of one size, `residual`
 * not `x`, `out` neither of them, the weight as {@link rmsNormGroups} takes it and a finite epsilon.
 * Returns the rows and width the norm runs over.
 *
 * @throws InvalidArgumentError naming the first bad operand.
 */
export function checkAddRmsNorm(
  x: DeviceTensor,
  residual: DeviceTensor,
  weight: DeviceTensor,
  out: DeviceTensor,
  epsilon: number,
): MatrixView {
  requireF32(residual, 'residual');
  requireEqual('residual', 'size', shapeSize(x.shape), shapeSize(residual.shape), residual);
  requireDistinct(x, residual, 'x', 'residual');
  requireDistinct(x, out, 'x', 'out');
  requireDistinct(residual, out, 'residual', 'out');
  const groups = checkRmsNormOperands(x, weight, out, epsilon);
  return groups;
}

/** The checked operands of a RoPE call. */
export interface RopeOperands {
  readonly rows: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly style: RopeStyle;
}

/**
 * Checks the operands of `ModelOps.rope`: `x` is f32 `[rows, numHeads, headDim]` with an even
 * `headDim`, `positions` has `rows` non-negative entries, `theta` is finite and positive, and the style
 * is known (`interleaved` when omitted).
 *
 * @throws InvalidArgumentError naming the first bad operand.
 */
export function checkRopeOperands(
  x: DeviceTensor,
  positions: Int32Array,
  options: RopeOptions,
): RopeOperands {
  requireF32(x, 'x');
  if (x.shape.length !== 3) {
    throw new InvalidArgumentError('x must be [rows, numHeads, headDim] for rope', {
      argument: 'x',
      expected: '[rows, numHeads, headDim]',
      actual: x.shape,
    });
  }
  const [rows, numHeads, headDim] = x.shape as [number, number, number];
  if (headDim % 2 !== 0) {
    throw new InvalidArgumentError(`rope needs an even headDim, got ${headDim}`, {
      argument: 'x',
      expected: 'even headDim',
      actual: headDim,
    });
  }
  requireEqual('positions', 'length', rows, positions.length, x);
  requireIndices('positions', positions, 2 ** 31 - 1);
  if (!(typeof options.theta === 'number' && options.theta > 0 && Number.isFinite(options.theta))) {
    throw new InvalidArgumentError('rope theta must be a finite number > 0', {
      argument: 'options.theta',
      expected: '> 0',
      actual: options.theta,
    });
  }
  const style = options.style ?? 'interleaved';
  if (style !== 'interleaved' && style !== 'half') {
    throw new InvalidArgumentError(`unknown rope style ${String(style)}`, {
      argument: 'options.style',
      expected: "'interleaved' | 'half'",
      actual: style,
    });
  }
  const factors = options.frequencyFactors;
  if (factors !== undefined) {
    if (!(factors instanceof Float32Array) || factors.length !== headDim / 2) {
      throw new InvalidArgumentError(
        `rope frequencyFactors must be a Float32Array of headDim / 2 = ${headDim / 2} values`,
        {
          argument: 'options.frequencyFactors',
          expected: `Float32Array[${headDim / 2}]`,
          actual: factors instanceof Float32Array ? factors.length : typeof factors,
        },
      );
    }
    for (let index = 0; index < factors.length; index++) {
      const factor = factors[index]!;
      if (!(factor > 0 && Number.isFinite(factor))) {
        throw new InvalidArgumentError(`rope frequencyFactors[${index}] = ${factor} must be finite and > 0`, {
          argument: `options.frequencyFactors[${index}]`,
          expected: '> 0, finite',
          actual: factor,
        });
      }
    }
  }
  return { rows, numHeads, headDim, style };
}

/**
 * Checks `temperature` of `ModelOps.softmax`: a finite number `> 0`.
 *
 * @throws InvalidArgumentError when it is not.
 */
export function checkTemperature(temperature: unknown): void {
  if (!(typeof temperature === 'number' && temperature > 0 && Number.isFinite(temperature))) {
    throw new InvalidArgumentError('temperature must be a finite number > 0', {
      argument: 'temperature',
      expected: '> 0',
      actual: temperature,
    });
  }
}

/**
 * Checks `k` of `ModelOps.topK`: an integer with `1 <= k <= columns`.
 *
 * @throws InvalidArgumentError when it is not.
 */
export function checkTopK(k: number, columns: number): void {
  assertInteger('k', k, 1);
  if (k > columns) {
    throw new InvalidArgumentError(`k = ${k} exceeds the row width ${columns}`, {
      argument: 'k',
      expected: `<= ${columns}`,
      actual: k,
    });
  }
}

/**
 * Checks the slot lists of `ModelOps.copyKVSlots`: equal lengths, every slot in `[0, numSlots)`, and
 * no target repeated or also listed as a source (so the copies do not depend on their order).
 *
 * @throws InvalidArgumentError naming the first bad entry.
 */
export function checkSlotCopy(source: Int32Array, target: Int32Array, numSlots: number): void {
  requireIndices('source', source, numSlots);
  requireIndices('target', target, numSlots);
  if (source.length !== target.length) {
    throw new InvalidArgumentError(
      `target must hold ${source.length} slots like source, got ${target.length}`,
      { argument: 'target', expected: source.length, actual: target.length },
    );
  }
  const sources = new Set(source);
  const targets = new Set<number>();
  for (let index = 0; index < target.length; index++) {
    const slot = target[index]!;
    if (targets.has(slot) || sources.has(slot)) {
      throw new InvalidArgumentError(
        `target[${index}] = ${slot} repeats a target or is also a source; copies must be disjoint`,
        {
          argument: `target[${index}]`,
          expected: 'a distinct slot that is not a source',
          actual: slot,
        },
      );
    }
    targets.add(slot);
  }
}

/**
 * Checks the arguments of `ModelOps.createQuantizedWeight` before anything is allocated: `quantization`
 * is a {@link BlockQuantization}, `shape` is `[rows, columns]` of integers `>= 1` with `columns` a whole
 * number of blocks (a multiple of 32, or of 256 for the K-quants), and `blocks` is a `Uint8Array` of
 * exactly the bytes of `rows · columns / blockValues` blocks.
 *
 * @returns the checked shape `[rows, columns]`.
 * @throws InvalidArgumentError with `argument` `quantization`, `shape` or `blocks`, whichever is first wrong.
 * @example
 * ```ts
 * const [rows, columns] = checkQuantizedWeight([4096, 4096], 'q4_k', blocks);
 * ```
 */
export function checkQuantizedWeight(
  shape: readonly [number, number],
  quantization: BlockQuantization,
  blocks: Uint8Array,
): readonly [number, number] {
  if (!isBlockQuantization(quantization)) {
    throw new InvalidArgumentError(
      `quantization ${String(quantization)} is not one of ${BLOCK_QUANTIZATIONS.join(', ')}`,
      { argument: 'quantization', expected: BLOCK_QUANTIZATIONS, actual: quantization },
    );
  }
  const [rows, columns] = Array.isArray(shape) ? shape : [];
  const { values } = blockQuantizationLayout(quantization);
  if (
    !Array.isArray(shape) ||
    shape.length !== 2 ||
    !Number.isInteger(rows) ||
    !Number.isInteger(columns) ||
    rows! < 1 ||
    columns! < 1 ||
    columns! % values !== 0
  ) {
    throw new InvalidArgumentError(
      `a ${quantization} weight must be [rows, columns] with columns a multiple of ${values}, got [${String(shape)}]`,
      { argument: 'shape', expected: `[rows, k · ${values}]`, actual: shape },
    );
  }
  const size = quantizedByteLength(quantization, rows! * columns!);
  if (!(blocks instanceof Uint8Array) || blocks.byteLength !== size) {
    throw new InvalidArgumentError(
      `a ${quantization} weight [${rows}, ${columns}] needs ${size} bytes of blocks`,
      {
        argument: 'blocks',
        expected: size,
        actual: blocks instanceof Uint8Array ? blocks.byteLength : typeof blocks,
      },
    );
  }
  return [rows!, columns!];
}
