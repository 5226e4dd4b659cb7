/// <reference types="@webgpu/types" />
import { CapacityError } from '@deft/core';
import { describe, expect, it, vi } from 'vitest';
import { blocksBufferSize, MAX_QUANTIZED_ELEMENTS, uploadBlocks } from './quantized-weight.js';

/** Limits large enough that only the element count can refuse a weight. */
const LARGE = { maxBufferSize: 2 ** 40, maxStorageBufferBindingSize: 2 ** 40 };

function refusal(work: () => unknown): CapacityError {
  try {
    work();
  } catch (error) {
    expect(CapacityError.isInstance(error), String(error)).toBe(true);
    return error as CapacityError;
  }
  throw new Error('expected a CapacityError');
}

describe('quantized weight buffers', () => {
  it('pads the blocks to 16 bytes', () => {
    expect(blocksBufferSize(LARGE, 'q8_0', [1, 32], 34)).toBe(48);
    expect(blocksBufferSize(LARGE, 'q8_0', [1, 32], 0)).toBe(16);
  });

  it('refuses a weight of more than 2^32 - 1 elements, which a u32 element index cannot reach', () => {
    // 65536 · 65536 elements: 2^32.
    const shape = [65536, 65536] as const;
    const error = refusal(() => blocksBufferSize(LARGE, 'q8_0', shape, (shape[0] * shape[1] * 34) / 32));
    expect(error.message).toContain(`above the ${MAX_QUANTIZED_ELEMENTS}`);
    // One row fewer fits.
    expect(blocksBufferSize(LARGE, 'q8_0', [65535, 65536], 16)).toBe(16);
  });

  it("refuses a buffer above the device's binding limit", () => {
    const limits = { maxBufferSize: 2 ** 28, maxStorageBufferBindingSize: 2 ** 27 };
    expect(refusal(() => blocksBufferSize(limits, 'q8_0', [1, 32], 2 ** 27 + 1)).message).toContain(
      'more than this device binds',
    );
  });

  it('destroys the new buffer when writing the blocks throws', () => {
    const destroy = vi.fn();
    const device = {
      createBuffer: () => ({ destroy }),
      queue: {
        writeBuffer: () => {
          throw new Error('device lost');
        },
      },
    } as unknown as GPUDevice;
    expect(() => uploadBlocks(device, 'q8_0', new Uint8Array(34), 48)).toThrow('device lost');
    expect(destroy).toHaveBeenCalledTimes(1);
  });
});
