import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f16ToF32Table, f32ToF16Bits, fromF16Array } from './f16.js';

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

  it('decodes every one of the 65536 bit patterns exactly as the scalar conversion does', () => {
    const all = new Uint16Array(65536).map((_, bits) => bits);
    // the scalar conversion's results, stored as f32 the way every decoder stores them
    const expected = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) expected[bits] = f16BitsToF32(bits);
    const expectedBits = new Uint32Array(expected.buffer);
    const table = f16ToF32Table();
    const decodedBits = new Uint32Array(fromF16Array(all).buffer);
    const tableBits = new Uint32Array(table.buffer, table.byteOffset, table.length);
    // bit for bit, NaN payloads included; report the first pattern that differs
    const mismatch = (actual: Uint32Array): number =>
      actual.findIndex((value, bits) => value !== expectedBits[bits]);
    expect(mismatch(decodedBits)).toBe(-1);
    expect(mismatch(tableBits)).toBe(-1);
    expect(f16ToF32Table()).toBe(table);
  });

  it('keeps signed zeros, subnormals, infinities and NaN', () => {
    const decoded = fromF16Array(
      Uint16Array.of(0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0x7c00, 0xfc00),
    );
    expect(Array.from(decoded)).toEqual([
      0,
      -0,
      2 ** -24,
      -1023 * 2 ** -24,
      2 ** -14,
      65504,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ]);
    expect(Object.is(decoded[1], -0)).toBe(true);
    for (const nan of [0x7c01, 0x7e00, 0x7fff, 0xfc01, 0xfe00, 0xffff])
      expect(Number.isNaN(fromF16Array(Uint16Array.of(nan))[0])).toBe(true);
  });

  it('decodes an empty array', () => {
    expect(fromF16Array(new Uint16Array(0))).toEqual(new Float32Array(0));
  });
});
