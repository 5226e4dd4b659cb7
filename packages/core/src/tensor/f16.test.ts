import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from './f16.js';

describe('f16 conversion', () => {
  it('round-trips representable values and rounds to nearest even', () => {
    for (const value of [0, 1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, 1.5, -0.333251953125]) {
      expect(f16BitsToF32(f32ToF16Bits(value))).toBe(value);
    }
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // halfway rounds to even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16BitsToF32(f32ToF16Bits(70000))).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN)))).toBe(true);
  });

  it('agrees with Math.fround-based rounding on random values', () => {
    let seed = 7;
    for (let index = 0; index < 2000; index++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const value = (seed / 2 ** 32 - 0.5) * 20;
      const roundTrip = f16BitsToF32(f32ToF16Bits(value));
      expect(Math.abs(roundTrip - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -11 + 2 ** -25);
    }
  });
});
