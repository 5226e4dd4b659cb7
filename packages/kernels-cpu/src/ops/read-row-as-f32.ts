import { f16ToF32Table } from '@deft/core';

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
  const values = f16ToF32Table();
  for (let index = 0; index < count; index++) target[index] = values[source[offset + index]!]!;
}
