import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors/invalid-argument-error.js';
import type { BlockQuantization } from '../tensor/block-quantization.js';
import { checkQuantizedWeight } from './model-op-operands.js';

/** Runs `run` and returns the InvalidArgumentError it throws. */
function invalidArgument(run: () => unknown): InvalidArgumentError {
  try {
    run();
  } catch (error) {
    expect(InvalidArgumentError.isInstance(error), String(error)).toBe(true);
    return error as InvalidArgumentError;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('checkQuantizedWeight', () => {
  it('returns the shape of whole blocks of the exact byte count', () => {
    // Q8_0: 32 values in 34 bytes; Q4_K: 256 values in 144 bytes.
    expect(checkQuantizedWeight([3, 64], 'q8_0', new Uint8Array(3 * 2 * 34))).toEqual([3, 64]);
    expect(checkQuantizedWeight([2, 256], 'q4_k', new Uint8Array(2 * 144))).toEqual([2, 256]);
  });

  it('refuses an unknown quantization', () => {
    const error = invalidArgument(() =>
      checkQuantizedWeight([1, 32], 'q2_k' as BlockQuantization, new Uint8Array(34)),
    );
    expect(error).toMatchObject({ argument: 'quantization', actual: 'q2_k' });
    expect(error.message).toMatch(/is not one of q8_0, q4_0/);
  });

  it('refuses a shape that is not [rows, columns] of whole blocks', () => {
    const blocks = new Uint8Array(144);
    for (const shape of [[1], [1, 2, 256], [0, 256], [1.5, 256], [1, 128], null]) {
      const error = invalidArgument(() =>
        checkQuantizedWeight(shape as unknown as [number, number], 'q4_k', blocks),
      );
      expect(error.argument, String(shape)).toBe('shape');
    }
    expect(invalidArgument(() => checkQuantizedWeight([1, 128], 'q4_k', blocks)).message).toMatch(
      /columns a multiple of 256, got \[1,128\]/,
    );
  });

  it('refuses blocks of the wrong size or type', () => {
    expect(invalidArgument(() => checkQuantizedWeight([2, 32], 'q4_0', new Uint8Array(35)))).toMatchObject({
      argument: 'blocks',
      expected: 36,
      actual: 35,
    });
    const notBytes = new Float32Array(9) as unknown as Uint8Array;
    expect(invalidArgument(() => checkQuantizedWeight([2, 32], 'q4_0', notBytes))).toMatchObject({
      argument: 'blocks',
      actual: 'object',
    });
  });
});
