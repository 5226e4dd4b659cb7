import { f16BitsToF32 } from '@deft/core';

let table: Float32Array | undefined;

/** `[65536]` f32 value of every binary16 bit pattern, built on first use (256 KiB). */
export function f16Table(): Float32Array {
  if (table === undefined) {
    table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = f16BitsToF32(bits);
  }
  return table;
}

/** Decodes `count` values starting at `offset` of `source` (f32 or binary16 bits) into `target[0..count)`. */
export function readRowAsF32(
  source: Float32Array | Uint16Array,
  offset: number,
  count: number,
  target: Float32Array,
): void {
  if (source instanceof Float32Array) {
    target.set(source.subarray(offset, offset + count));
    return;
  }
  const values = f16Table();
  for (let index = 0; index < count; index++) target[index] = values[source[offset + index]!]!;
}
