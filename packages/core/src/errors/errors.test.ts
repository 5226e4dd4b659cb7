import { describe, expect, it } from 'vitest';
import { CapacityError } from './capacity-error.js';
import { DeftError } from './deft-error.js';
import { InvalidArgumentError } from './invalid-argument-error.js';

describe('DeftError', () => {
  it('is recognised by marker and code, with structured fields', () => {
    const error = new InvalidArgumentError('count must be >= 1', {
      argument: 'count',
      expected: '>= 1',
      actual: 0,
    });
    expect(DeftError.isInstance(error)).toBe(true);
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(CapacityError.isInstance(error)).toBe(false);
    expect(error.name).toBe('InvalidArgumentError');
    expect(error.argument).toBe('count');
    expect(error.actual).toBe(0);
  });

  it('recognises an error from another copy of the package by its Symbol.for marker', () => {
    const foreign = Object.assign(new Error('x'), {
      code: 'DEFT_CAPACITY',
      [Symbol.for('@deft/core/error')]: true,
    });
    expect(CapacityError.isInstance(foreign)).toBe(true);
    expect(DeftError.isInstance(new Error('plain'))).toBe(false);
  });
});
