import { CapacityError, type KVStorageDescriptor } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { checkKVStorageSize, MAX_KV_SLOTS } from './webgpu-kv-storage.js';

/** The WebGPU defaults (128 MiB binding, 256 MiB buffer) and no budget. */
const LIMITS = { maxBufferSize: 2 ** 28, maxStorageBufferBindingSize: 2 ** 27, budgetBytes: Infinity };
const LLAMA: Omit<KVStorageDescriptor, 'numPages'> = {
  numLayers: 32,
  pageSize: 16,
  numKvHeads: 8,
  headDim: 128,
  dtype: 'f16',
};

function refusal(descriptor: KVStorageDescriptor, limits = LIMITS): Error {
  try {
    checkKVStorageSize(descriptor, limits);
  } catch (error) {
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    return error as Error;
  }
  throw new Error('expected a CapacityError');
}

describe('WebGPU KV storage size', () => {
  it('counts K and V of every layer in 16-byte-aligned buffers', () => {
    const bytes = checkKVStorageSize({ ...LLAMA, numPages: 4 }, LIMITS);
    expect(bytes.layerBytes).toBe(4 * 16 * 8 * 128 * 2);
    expect(bytes.totalBytes).toBe(2 * 32 * bytes.bufferBytes);
    expect(
      checkKVStorageSize(
        { ...LLAMA, numLayers: 1, numPages: 1, pageSize: 1, numKvHeads: 1, headDim: 4 },
        LIMITS,
      ),
    ).toMatchObject({ layerBytes: 8, bufferBytes: 16, totalBytes: 32 });
  });

  it("refuses a layer above the device's binding limit, naming the bytes, the limit and the pages that fit", () => {
    // 8192 pages of Llama-3-8B KV: 256 MiB per layer of K.
    const error = refusal({ ...LLAMA, numPages: 8192 });
    expect(error.message).toContain(`buffer of ${2 ** 28} bytes`);
    expect(error.message).toContain(`maxStorageBufferBindingSize of ${2 ** 27} bytes`);
    expect(error.message).toContain('at most 4096 pages');
    // The most pages that fit are accepted.
    expect(checkKVStorageSize({ ...LLAMA, numPages: 4096 }, LIMITS).bufferBytes).toBe(2 ** 27);
    // A device whose buffers are smaller than its bindings names maxBufferSize.
    const small = refusal({ ...LLAMA, numPages: 8192 }, { ...LIMITS, maxBufferSize: 2 ** 26 });
    expect(small.message).toContain(`maxBufferSize of ${2 ** 26} bytes`);
  });

  it('refuses storage above the device-memory budget and accepts it at the budget', () => {
    const total = 2 * 32 * 100 * 16 * 8 * 128 * 2;
    const error = refusal({ ...LLAMA, numPages: 100 }, { ...LIMITS, budgetBytes: total - 1 });
    expect(error.message).toContain(
      `need ${total} bytes, above the device-memory budget of ${total - 1} bytes`,
    );
    expect(error.message).toContain('at most 99 pages');
    expect(
      checkKVStorageSize({ ...LLAMA, numPages: 100 }, { ...LIMITS, budgetBytes: total }).totalBytes,
    ).toBe(total);
  });

  it('refuses more slots than 32-bit slot indices address', () => {
    const error = refusal({
      ...LLAMA,
      numLayers: 1,
      numPages: 2 ** 28,
      pageSize: 16,
      numKvHeads: 1,
      headDim: 4,
    });
    expect(error.message).toContain(`${2 ** 32} slots, above the limit of ${MAX_KV_SLOTS}`);
  });
});
