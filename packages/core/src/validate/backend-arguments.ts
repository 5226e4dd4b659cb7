import type { KVStorageDescriptor } from '../backend/kv-storage.js';
import { InvalidArgumentError } from '../errors/invalid-argument-error.js';
import type { AttentionShape } from '../plan/plan.js';
import { type DType, isDType } from '../tensor/dtype.js';
import { formatShape, type Shape, shapeSize, type TensorDescriptor } from '../tensor/tensor.js';
import { assertInteger, describeValue } from './assert.js';

// Backend-independent checks of the Backend contract's arguments. Ownership of tensors and storages,
// disposal and device limits stay with each backend; these functions only look at plain values.

/**
 * Checks that `value` names a supported dtype (`'f32'` or `'f16'`).
 *
 * @throws InvalidArgumentError (with `argument`) for anything else.
 * @example
 * ```ts
 * const dtype = checkDType('descriptor.dtype', descriptor.dtype);
 * ```
 */
export function checkDType(argument: string, value: unknown): DType {
  if (!isDType(value)) {
    throw new InvalidArgumentError(`${argument} must be 'f32' or 'f16', got ${describeValue(value)}`, {
      argument,
      expected: "'f32' | 'f16'",
      actual: value,
    });
  }
  return value;
}

/**
 * Checks a tensor descriptor: `shape` an array of integers `>= 0` and a supported `dtype`.
 *
 * @throws InvalidArgumentError with `argument` `descriptor.shape`, `descriptor.shape[i]` or `descriptor.dtype`.
 * @example
 * ```ts
 * const { shape, dtype } = checkTensorDescriptor({ shape: [4, 8, 64], dtype: 'f32' });
 * ```
 */
export function checkTensorDescriptor(descriptor: unknown): TensorDescriptor {
  const candidate = descriptor as Partial<TensorDescriptor> | null | undefined;
  const shape: unknown = typeof candidate === 'object' && candidate !== null ? candidate.shape : undefined;
  if (!Array.isArray(shape)) {
    throw new InvalidArgumentError(
      `descriptor.shape must be an array of dimensions, got ${describeValue(shape)}`,
      { argument: 'descriptor.shape', expected: 'number[]', actual: shape },
    );
  }
  shape.forEach((dimension, index) => {
    assertInteger(`descriptor.shape[${index}]`, dimension, 0);
  });
  const dtype = checkDType('descriptor.dtype', candidate?.dtype);
  return { shape: shape as Shape, dtype };
}

/**
 * Checks host data for a tensor upload: a `Float32Array` holding exactly `shapeSize(shape)` values.
 *
 * @param shape The tensor's shape, e.g. `[numQueries, numHeads, headDim]`.
 * @throws InvalidArgumentError with `argument` `data`.
 * @example
 * ```ts
 * const data = checkUploadData(values, tensor.shape);
 * ```
 */
export function checkUploadData(data: unknown, shape: Shape): Float32Array {
  const size = shapeSize(shape);
  if (!(data instanceof Float32Array)) {
    throw new InvalidArgumentError(
      `data must be a Float32Array of ${size} values, got ${describeValue(data)}`,
      { argument: 'data', expected: 'Float32Array', actual: data },
    );
  }
  if (data.length !== size) {
    throw new InvalidArgumentError(
      `data must hold ${size} values for shape ${formatShape(shape)}, got ${data.length}`,
      { argument: 'data', expected: size, actual: data.length },
    );
  }
  return data;
}

/**
 * Checks a KV storage descriptor: an object whose `numLayers`, `numPages`, `pageSize`, `numKvHeads`
 * and `headDim` are integers `>= 1`, and whose `dtype` is supported. Backend limits (head dim, buffer
 * sizes) are the backend's to check afterwards.
 *
 * @throws InvalidArgumentError with `argument` `descriptor` or `descriptor.<field>`.
 * @example
 * ```ts
 * checkKVStorageDescriptor({ numLayers: 32, numPages: 4096, pageSize: 16, numKvHeads: 8, headDim: 128, dtype: 'f16' });
 * ```
 */
export function checkKVStorageDescriptor(descriptor: unknown): KVStorageDescriptor {
  if (typeof descriptor !== 'object' || descriptor === null) {
    throw new InvalidArgumentError(
      `descriptor must be a KVStorageDescriptor object, got ${describeValue(descriptor)}`,
      { argument: 'descriptor', expected: 'object', actual: descriptor },
    );
  }
  const candidate = descriptor as Partial<KVStorageDescriptor>;
  for (const field of ['numLayers', 'numPages', 'pageSize', 'numKvHeads', 'headDim'] as const) {
    assertInteger(`descriptor.${field}`, candidate[field], 1);
  }
  checkDType('descriptor.dtype', candidate.dtype);
  return candidate as KVStorageDescriptor;
}

/**
 * Checks an attention shape: `numHeads`, `numKvHeads` and `headDim` integers `>= 1`, `numKvHeads`
 * dividing `numHeads`, and a supported `kvDtype`.
 *
 * @param argument The name used in errors (`shape` or `plan.shape`).
 * @returns A plain copy `{ numHeads, numKvHeads, headDim, kvDtype }`.
 * @throws InvalidArgumentError with `argument` `<argument>` or `<argument>.<field>`.
 * @example
 * ```ts
 * const shape = checkAttentionShape({ numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' });
 * ```
 */
export function checkAttentionShape(shape: unknown, argument = 'shape'): AttentionShape {
  if (typeof shape !== 'object' || shape === null) {
    throw new InvalidArgumentError(`${argument} must be an AttentionShape, got ${describeValue(shape)}`, {
      argument,
      expected: 'AttentionShape',
      actual: shape,
    });
  }
  const candidate = shape as Partial<AttentionShape>;
  const numHeads = assertInteger(`${argument}.numHeads`, candidate.numHeads, 1);
  const numKvHeads = assertInteger(`${argument}.numKvHeads`, candidate.numKvHeads, 1);
  const headDim = assertInteger(`${argument}.headDim`, candidate.headDim, 1);
  if (numHeads % numKvHeads !== 0) {
    throw new InvalidArgumentError(
      `${argument}.numKvHeads must divide numHeads (${numHeads}), got ${numKvHeads}`,
      { argument: `${argument}.numKvHeads`, expected: `a divisor of ${numHeads}`, actual: numKvHeads },
    );
  }
  const kvDtype = checkDType(`${argument}.kvDtype`, candidate.kvDtype);
  return { numHeads, numKvHeads, headDim, kvDtype };
}

/**
 * Checks a layer index against a storage's layer count: an integer with `0 <= layer < numLayers`.
 *
 * @throws InvalidArgumentError with `argument` `layer`.
 * @example
 * ```ts
 * const layer = checkLayerIndex(args.layer, storage.descriptor.numLayers);
 * ```
 */
export function checkLayerIndex(layer: unknown, numLayers: number): number {
  const value = assertInteger('layer', layer, 0);
  if (value >= numLayers) {
    throw new InvalidArgumentError(`layer must be below the storage's ${numLayers} layers, got ${value}`, {
      argument: 'layer',
      expected: `< ${numLayers}`,
      actual: value,
    });
  }
  return value;
}

/** Options of {@link checkSlotIndices}. */
export interface SlotCheckOptions {
  /** Reject a slot listed twice (a write must name each slot once). Default `false`. */
  readonly distinct?: boolean;
}

/**
 * Checks token slots `[count]`: an `Int32Array` whose every entry is a slot of the storage,
 * `0 <= slot < numSlots` (`numSlots = numPages × pageSize`), optionally all distinct.
 *
 * @throws InvalidArgumentError with `argument` `slots` or `slots[i]`.
 * @example
 * ```ts
 * checkSlotIndices(slots, numPages * pageSize, { distinct: true });
 * ```
 */
export function checkSlotIndices(
  slots: unknown,
  numSlots: number,
  options: SlotCheckOptions = {},
): Int32Array {
  if (!(slots instanceof Int32Array)) {
    throw new InvalidArgumentError(`slots must be an Int32Array, got ${describeValue(slots)}`, {
      argument: 'slots',
      expected: 'Int32Array',
      actual: slots,
    });
  }
  const seen = options.distinct === true ? new Set<number>() : undefined;
  for (let index = 0; index < slots.length; index++) {
    const slot = slots[index]!;
    if (slot < 0 || slot >= numSlots) {
      throw new InvalidArgumentError(
        `slots[${index}] must be a slot of the storage (0 <= slot < ${numSlots}), got ${slot}`,
        { argument: `slots[${index}]`, expected: `< ${numSlots}`, actual: slot },
      );
    }
    if (seen !== undefined) {
      if (seen.has(slot)) {
        throw new InvalidArgumentError(
          `slots[${index}] = ${slot} appears twice; write each slot once per call`,
          { argument: `slots[${index}]`, expected: 'distinct slots', actual: slot },
        );
      }
      seen.add(slot);
    }
  }
  return slots;
}

/**
 * Checks the length of host K or V rows for `writeKV`: `[slotCount, numKvHeads, headDim]` values.
 *
 * @param argument `k` or `v`.
 * @param rowValues `numKvHeads × headDim`.
 * @throws InvalidArgumentError with `argument` set to `argument`.
 * @example
 * ```ts
 * checkKVValueCount('k', k.length, slots.length, numKvHeads * headDim);
 * ```
 */
export function checkKVValueCount(
  argument: string,
  length: number,
  slotCount: number,
  rowValues: number,
): void {
  const expected = slotCount * rowValues;
  if (length !== expected) {
    throw new InvalidArgumentError(
      `${argument} must hold ${expected} values ([slots.length=${slotCount}, numKvHeads, headDim]), got ${length}`,
      { argument, expected, actual: length },
    );
  }
}

/** Options of {@link checkPageCopy}. */
export interface PageCopyCheckOptions {
  /** Reject a target page listed twice. Default `false`. */
  readonly distinctTargets?: boolean;
  /** Reject a target page that is also a source page (copies that run in parallel). Default `false`. */
  readonly disjoint?: boolean;
}

/**
 * Checks the page lists of `copyPages`: `source` and `target` are `Int32Array`s `[count]` of equal
 * length whose entries are pages, `0 <= page < numPages`; optionally targets distinct and disjoint
 * from the sources.
 *
 * @throws InvalidArgumentError with `argument` `source`, `target`, `source[i]` or `target[i]`.
 * @example
 * ```ts
 * checkPageCopy(source, target, storage.descriptor.numPages, { distinctTargets: true });
 * ```
 */
export function checkPageCopy(
  source: unknown,
  target: unknown,
  numPages: number,
  options: PageCopyCheckOptions = {},
): { source: Int32Array; target: Int32Array } {
  if (!(source instanceof Int32Array)) {
    throw new InvalidArgumentError(
      `source must be an Int32Array of page indices, got ${describeValue(source)}`,
      { argument: 'source', expected: 'Int32Array', actual: source },
    );
  }
  if (!(target instanceof Int32Array) || target.length !== source.length) {
    throw new InvalidArgumentError(
      `target must be an Int32Array of ${source.length} page indices (one per source page), got ${describeValue(target)}${target instanceof Int32Array ? ` of length ${target.length}` : ''}`,
      { argument: 'target', expected: source.length, actual: target },
    );
  }
  const role = new Uint8Array(numPages); // bit 0: a source page, bit 1: a target page
  for (let index = 0; index < source.length; index++) {
    const page = source[index]!;
    if (page < 0 || page >= numPages) {
      throw new InvalidArgumentError(
        `source[${index}] must be a page (0 <= page < ${numPages}), got ${page}`,
        { argument: `source[${index}]`, expected: `< ${numPages}`, actual: page },
      );
    }
    role[page]! |= 1;
  }
  for (let index = 0; index < target.length; index++) {
    const page = target[index]!;
    if (page < 0 || page >= numPages) {
      throw new InvalidArgumentError(
        `target[${index}] must be a page (0 <= page < ${numPages}), got ${page}`,
        { argument: `target[${index}]`, expected: `< ${numPages}`, actual: page },
      );
    }
    if (options.distinctTargets === true && (role[page]! & 2) !== 0) {
      throw new InvalidArgumentError(
        `target[${index}] must not repeat a target page (${page}); copy into each page once per call`,
        { argument: `target[${index}]`, expected: 'distinct pages', actual: page },
      );
    }
    if (options.disjoint === true && (role[page]! & 1) !== 0) {
      throw new InvalidArgumentError(
        `target[${index}] must not also be a source page (copies run in parallel); split the copy into two calls`,
        { argument: `target[${index}]`, expected: 'a page not in source', actual: page },
      );
    }
    role[page]! |= 2;
  }
  return { source, target };
}

/**
 * Checks a `q` or `out` tensor of tree attention against the exact shape a plan needs:
 * f32 `[numQueries, numHeads, headDim]`.
 *
 * @throws InvalidArgumentError with `argument` set to `argument`.
 * @example
 * ```ts
 * checkAttentionTensor('q', q, [plan.numQueries, shape.numHeads, shape.headDim]);
 * ```
 */
export function checkAttentionTensor(
  argument: string,
  tensor: TensorDescriptor,
  expectedShape: readonly [number, number, number],
): void {
  const dims = tensor.shape;
  if (
    tensor.dtype !== 'f32' ||
    dims.length !== 3 ||
    dims.some((dimension, index) => dimension !== expectedShape[index])
  ) {
    throw new InvalidArgumentError(
      `${argument} must be an f32 tensor of shape ${formatShape(expectedShape)} ([numQueries, numHeads, headDim]), got ${tensor.dtype} ${formatShape(dims)}`,
      {
        argument,
        expected: `f32 ${formatShape(expectedShape)}`,
        actual: `${tensor.dtype} ${formatShape(dims)}`,
      },
    );
  }
}
