import { BackendError, CapacityError, type KVStorageDescriptor } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { toDeftError } from '../native/native-error.js';
import { checkCudaKVStorageSize, cudaKVStorageBytes, cudaKVStorageError } from './cuda-kv-storage.js';

const LLAMA: KVStorageDescriptor = {
  numLayers: 32,
  numPages: 4096,
  pageSize: 16,
  numKvHeads: 8,
  headDim: 128,
  dtype: 'f16',
};
const H200 = 150_000_000_000;

function refusal(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    return error as Error;
  }
  throw new Error('expected a CapacityError');
}

describe('CUDA KV storage size', () => {
  it('counts what the addon allocates: K and V of every layer, each region rounded up to 16 bytes', () => {
    expect(cudaKVStorageBytes(LLAMA)).toBe(2 ** 33);
    expect(
      cudaKVStorageBytes({ ...LLAMA, numLayers: 1, numPages: 1, pageSize: 1, numKvHeads: 1, headDim: 3 }),
    ).toBe(2 * 16);
  });

  it('refuses storage above the device memory before allocating, naming the bytes, the limit and the pages that fit', () => {
    const huge = { ...LLAMA, numPages: 2 ** 20 }; // 2 TiB
    const error = refusal(() => checkCudaKVStorageSize(huge, { totalBytes: H200 }));
    expect(error.message).toContain(`need ${2 ** 41} bytes, above the device memory of ${H200} bytes`);
    const fits = Math.floor(H200 / (2 * 32 * 16 * 8 * 128 * 2));
    expect(error.message).toContain(`at most ${fits} pages`);
    expect(checkCudaKVStorageSize({ ...LLAMA, numPages: fits }, { totalBytes: H200 })).toBeLessThanOrEqual(
      H200,
    );
  });

  it('checks against free memory when it is known', () => {
    const error = refusal(() => checkCudaKVStorageSize(LLAMA, { totalBytes: H200, freeBytes: 2 ** 33 - 1 }));
    expect(error.message).toContain(
      `above the free device memory (of ${H200} bytes in all) of ${2 ** 33 - 1} bytes`,
    );
    expect(checkCudaKVStorageSize(LLAMA, { totalBytes: H200, freeBytes: 2 ** 33 })).toBe(2 ** 33);
  });

  it("turns the addon's out-of-memory failure into a CapacityError, and leaves other failures alone", () => {
    const addonError = Object.assign(
      new Error('cudaErrorMemoryAllocation (2): out of memory [cudaMalloc(&storage->pointer, total)]'),
      { deftStatus: 'cuda', cudaError: 2 },
    );
    const converted = cudaKVStorageError(toDeftError(addonError, 'createKVStorage'), LLAMA, {
      totalBytes: H200,
    });
    expect(CapacityError.isInstance(converted)).toBe(true);
    expect((converted as Error).message).toContain(
      `need ${2 ** 33} bytes, more than the device could allocate`,
    );
    expect((converted as Error).message).toContain(`the device memory is ${H200} bytes`);
    const other = toDeftError(
      Object.assign(new Error('launch failed'), { deftStatus: 'cuda', cudaError: 719 }),
      'x',
    );
    expect(BackendError.isInstance(other)).toBe(true);
    expect(cudaKVStorageError(other, LLAMA, { totalBytes: H200 })).toBe(other);
  });
});
