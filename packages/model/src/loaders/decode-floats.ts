import { f16ToF32Table, fromF16Array } from '@deft/core';

const littleEndianPlatform = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes `count` little-endian f32 values starting at byte `offset` of `bytes` into a new array. */
export function decodeF32(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const start = bytes.byteOffset + offset;
  if (littleEndianPlatform) return new Float32Array(bytes.buffer.slice(start, start + count * 4));
  const view = new DataView(bytes.buffer, start, count * 4);
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) values[index] = view.getFloat32(index * 4, true);
  return values;
}

/** Decodes `count` little-endian IEEE binary16 values starting at byte `offset` into f32. */
export function decodeF16(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const start = bytes.byteOffset + offset;
  if (littleEndianPlatform)
    return fromF16Array(new Uint16Array(bytes.buffer.slice(start, start + count * 2)));
  const table = f16ToF32Table();
  const view = new DataView(bytes.buffer, start, count * 2);
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) values[index] = table[view.getUint16(index * 2, true)]!;
  return values;
}

/** Decodes `count` little-endian bfloat16 values starting at byte `offset` into f32. */
export function decodeBf16(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 2);
  const bits = new Uint32Array(count);
  for (let index = 0; index < count; index++) bits[index] = view.getUint16(index * 2, true) << 16;
  return new Float32Array(bits.buffer);
}
