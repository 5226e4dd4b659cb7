import { f16BitsToF32 } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { decodeF16 } from './decode-floats.js';

describe('decodeF16', () => {
  it('decodes little-endian binary16 at an odd byte offset exactly as the scalar conversion', () => {
    const patterns = [0x0000, 0x8000, 0x0001, 0x83ff, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0xc001];
    const bytes = new Uint8Array(1 + patterns.length * 2);
    patterns.forEach((bits, index) => {
      bytes[1 + index * 2] = bits & 0xff;
      bytes[2 + index * 2] = bits >>> 8;
    });
    const decoded = decodeF16(bytes.subarray(0), 1, patterns.length);
    expect(Array.from(decoded)).toEqual(patterns.map((bits) => Math.fround(f16BitsToF32(bits))));
  });
});
