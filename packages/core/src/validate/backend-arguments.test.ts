import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors/invalid-argument-error.js';
import {
  checkAttentionShape,
  checkAttentionTensor,
  checkDType,
  checkKVStorageDescriptor,
  checkKVValueCount,
  checkLayerIndex,
  checkPageCopy,
  checkSlotIndices,
  checkTensorDescriptor,
  checkUploadData,
} from './backend-arguments.js';

/** Runs `run` and returns the `argument` of the InvalidArgumentError it throws. */
function invalidArgument(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(InvalidArgumentError.isInstance(error), String(error)).toBe(true);
    return (error as InvalidArgumentError).argument;
  }
  throw new Error('expected an InvalidArgumentError');
}

const storage = { numLayers: 2, numPages: 4, pageSize: 2, numKvHeads: 2, headDim: 8, dtype: 'f16' } as const;

describe('checkDType', () => {
  it('accepts f32 and f16 and names the argument otherwise', () => {
    expect(checkDType('x', 'f16')).toBe('f16');
    expect(invalidArgument(() => checkDType('descriptor.dtype', 'bf16'))).toBe('descriptor.dtype');
  });
});

describe('checkTensorDescriptor', () => {
  it('accepts non-negative integer shapes, including scalars and empty dimensions', () => {
    expect(checkTensorDescriptor({ shape: [2, 0, 3], dtype: 'f32' })).toEqual({
      shape: [2, 0, 3],
      dtype: 'f32',
    });
    expect(checkTensorDescriptor({ shape: [], dtype: 'f16' }).shape).toEqual([]);
  });

  it('names the offending field', () => {
    expect(invalidArgument(() => checkTensorDescriptor(null))).toBe('descriptor.shape');
    expect(invalidArgument(() => checkTensorDescriptor({ shape: 'ab', dtype: 'f32' }))).toBe(
      'descriptor.shape',
    );
    expect(invalidArgument(() => checkTensorDescriptor({ shape: [2, -1], dtype: 'f32' }))).toBe(
      'descriptor.shape[1]',
    );
    expect(invalidArgument(() => checkTensorDescriptor({ shape: [1.5], dtype: 'f32' }))).toBe(
      'descriptor.shape[0]',
    );
    expect(invalidArgument(() => checkTensorDescriptor({ shape: [2], dtype: 'i8' }))).toBe(
      'descriptor.dtype',
    );
  });
});

describe('checkUploadData', () => {
  it('needs a Float32Array of exactly the shape size', () => {
    const data = new Float32Array(6);
    expect(checkUploadData(data, [2, 3])).toBe(data);
    expect(invalidArgument(() => checkUploadData([1, 2], [2]))).toBe('data');
    let thrown: unknown;
    try {
      checkUploadData(new Float32Array(5), [2, 3]);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ argument: 'data', expected: 6, actual: 5 });
    expect(String(thrown)).toMatch(/must hold 6 values for shape \[2, 3\]/);
  });
});

describe('checkKVStorageDescriptor', () => {
  it('accepts a descriptor of positive integers and a dtype', () => {
    expect(checkKVStorageDescriptor(storage)).toBe(storage);
    expect(checkKVStorageDescriptor({ ...storage, pageSize: 1 }).pageSize).toBe(1);
  });

  it('names the first bad field', () => {
    expect(invalidArgument(() => checkKVStorageDescriptor(undefined))).toBe('descriptor');
    for (const field of ['numLayers', 'numPages', 'pageSize', 'numKvHeads', 'headDim'] as const) {
      expect(invalidArgument(() => checkKVStorageDescriptor({ ...storage, [field]: 0 }))).toBe(
        `descriptor.${field}`,
      );
      expect(invalidArgument(() => checkKVStorageDescriptor({ ...storage, [field]: 2.5 }))).toBe(
        `descriptor.${field}`,
      );
    }
    expect(invalidArgument(() => checkKVStorageDescriptor({ ...storage, dtype: 'f64' }))).toBe(
      'descriptor.dtype',
    );
  });
});

describe('checkAttentionShape', () => {
  const shape = { numHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f32' } as const;

  it('returns a plain copy of a valid shape', () => {
    const checked = checkAttentionShape({ ...shape, extra: true });
    expect(checked).toEqual(shape);
  });

  it('checks fields, grouping and dtype under the given name', () => {
    expect(invalidArgument(() => checkAttentionShape(null))).toBe('shape');
    expect(invalidArgument(() => checkAttentionShape({ ...shape, numHeads: 0 }))).toBe('shape.numHeads');
    expect(invalidArgument(() => checkAttentionShape({ ...shape, headDim: -4 }))).toBe('shape.headDim');
    expect(invalidArgument(() => checkAttentionShape({ ...shape, numKvHeads: 3 }))).toBe('shape.numKvHeads');
    expect(invalidArgument(() => checkAttentionShape({ ...shape, kvDtype: 'bf16' }, 'plan.shape'))).toBe(
      'plan.shape.kvDtype',
    );
  });
});

describe('checkLayerIndex', () => {
  it('accepts 0 <= layer < numLayers', () => {
    expect(checkLayerIndex(0, 2)).toBe(0);
    expect(checkLayerIndex(1, 2)).toBe(1);
  });

  it('rejects negative, fractional and too-large layers', () => {
    for (const layer of [-1, 0.5, 2, Number.NaN, '0']) {
      expect(invalidArgument(() => checkLayerIndex(layer, 2))).toBe('layer');
    }
  });
});

describe('checkSlotIndices', () => {
  it('accepts slots in range, repeated ones unless distinct is asked for', () => {
    const slots = Int32Array.of(0, 7, 7);
    expect(checkSlotIndices(slots, 8)).toBe(slots);
    expect(checkSlotIndices(new Int32Array(0), 0).length).toBe(0);
    expect(invalidArgument(() => checkSlotIndices(slots, 8, { distinct: true }))).toBe('slots[2]');
  });

  it('rejects non-Int32Array lists and out-of-range slots', () => {
    expect(invalidArgument(() => checkSlotIndices([0], 8))).toBe('slots');
    expect(invalidArgument(() => checkSlotIndices(Uint32Array.of(0), 8))).toBe('slots');
    expect(invalidArgument(() => checkSlotIndices(Int32Array.of(0, 8), 8))).toBe('slots[1]');
    expect(invalidArgument(() => checkSlotIndices(Int32Array.of(-1), 8))).toBe('slots[0]');
  });
});

describe('checkKVValueCount', () => {
  it('needs slotCount × rowValues values', () => {
    expect(() => checkKVValueCount('k', 32, 2, 16)).not.toThrow();
    expect(invalidArgument(() => checkKVValueCount('v', 31, 2, 16))).toBe('v');
  });
});

describe('checkPageCopy', () => {
  it('accepts equal-length page lists and sequential overlaps by default', () => {
    expect(() => checkPageCopy(Int32Array.of(0, 1), Int32Array.of(1, 1), 4)).not.toThrow();
    expect(() => checkPageCopy(new Int32Array(0), new Int32Array(0), 1)).not.toThrow();
  });

  it('rejects bad lists and out-of-range pages', () => {
    expect(invalidArgument(() => checkPageCopy([0], Int32Array.of(1), 4))).toBe('source');
    expect(invalidArgument(() => checkPageCopy(Int32Array.of(0), [1], 4))).toBe('target');
    expect(invalidArgument(() => checkPageCopy(Int32Array.of(0), Int32Array.of(1, 2), 4))).toBe('target');
    expect(invalidArgument(() => checkPageCopy(Int32Array.of(0, 4), Int32Array.of(1, 2), 4))).toBe(
      'source[1]',
    );
    expect(invalidArgument(() => checkPageCopy(Int32Array.of(0), Int32Array.of(-1), 4))).toBe('target[0]');
  });

  it('enforces distinct targets and disjoint lists when asked', () => {
    expect(() =>
      checkPageCopy(Int32Array.of(0, 1), Int32Array.of(2, 2), 4, { distinctTargets: true }),
    ).toThrow(/repeat a target/);
    expect(() => checkPageCopy(Int32Array.of(0, 1), Int32Array.of(1, 2), 4, { disjoint: true })).toThrow(
      /also be a source/,
    );
    expect(
      invalidArgument(() =>
        checkPageCopy(Int32Array.of(0, 1), Int32Array.of(2, 2), 4, { distinctTargets: true }),
      ),
    ).toBe('target[1]');
    expect(() =>
      checkPageCopy(Int32Array.of(0, 1), Int32Array.of(2, 3), 4, { distinctTargets: true, disjoint: true }),
    ).not.toThrow();
  });
});

describe('checkAttentionTensor', () => {
  it('needs f32 and the exact [numQueries, numHeads, headDim] shape', () => {
    expect(() => checkAttentionTensor('q', { shape: [3, 4, 8], dtype: 'f32' }, [3, 4, 8])).not.toThrow();
    expect(() => checkAttentionTensor('q', { shape: [3, 4, 8], dtype: 'f16' }, [3, 4, 8])).toThrow(
      /must be an f32 tensor of shape \[3, 4, 8\]/,
    );
    expect(
      invalidArgument(() => checkAttentionTensor('out', { shape: [3, 4], dtype: 'f32' }, [3, 4, 8])),
    ).toBe('out');
    expect(
      invalidArgument(() => checkAttentionTensor('out', { shape: [3, 2, 8], dtype: 'f32' }, [3, 4, 8])),
    ).toBe('out');
  });
});
