import { InvalidArgumentError } from '../errors/invalid-argument-error.js';
import { f16ToF32Table } from './f16.js';

/**
 * The GGUF block quantizations weights may be held in (ggml's `block_q8_0`, `block_q4_0`, `block_q4_1`,
 * `block_q5_0`, `block_q5_1`, `block_q4_K`, `block_q5_K`, `block_q6_K`; Q4_K_M and Q5_K_M files hold these,
 * with Q5_0 / Q5_1 / Q8_0 for rows that are not whole 256-value blocks). A quantized `[rows, columns]` matrix
 * is `rows` runs of `columns / blockValues` blocks, row-major, each block as ggml lays it out.
 */
export type BlockQuantization = 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k';

/** Every block quantization, in a stable order. */
export const BLOCK_QUANTIZATIONS: readonly BlockQuantization[] = [
  'q8_0',
  'q4_0',
  'q4_1',
  'q5_0',
  'q5_1',
  'q4_k',
  'q5_k',
  'q6_k',
];

/** Values per block and bytes per block of each quantization (ggml's `QK8_0 = QK4_0 = 32`, `QK_K = 256`). */
const BLOCKS: Readonly<Record<BlockQuantization, { readonly values: number; readonly bytes: number }>> = {
  q8_0: { values: 32, bytes: 34 },
  q4_0: { values: 32, bytes: 18 },
  q4_1: { values: 32, bytes: 20 },
  q5_0: { values: 32, bytes: 22 },
  q5_1: { values: 32, bytes: 24 },
  q4_k: { values: 256, bytes: 144 },
  q5_k: { values: 256, bytes: 176 },
  q6_k: { values: 256, bytes: 210 },
};

/** True if `value` names a block quantization. */
export function isBlockQuantization(value: unknown): value is BlockQuantization {
  return typeof value === 'string' && value in BLOCKS;
}

/** Values and bytes of one block of a quantization (`values` 32 or 256). */
export function blockQuantizationLayout(quantization: BlockQuantization): {
  readonly values: number;
  readonly bytes: number;
} {
  return BLOCKS[quantization];
}

/** Bytes of `count` values in a quantization (`count` a multiple of the block size). */
export function quantizedByteLength(quantization: BlockQuantization, count: number): number {
  return (count / BLOCKS[quantization].values) * BLOCKS[quantization].bytes;
}

const fround = Math.fround;

/**
 * 6-bit scale and min `j` (0..7) of a K-quant super-block's packed 12 bytes (ggml's `get_scale_min_k4`).
 * @returns `scale | (min << 8)`
 */
function scaleMinK4(bytes: Uint8Array, offset: number, j: number): number {
  if (j < 4) return (bytes[offset + j]! & 63) | ((bytes[offset + j + 4]! & 63) << 8);
  const scale = (bytes[offset + j + 4]! & 0xf) | ((bytes[offset + j - 4]! >> 6) << 4);
  const min = (bytes[offset + j + 4]! >> 4) | ((bytes[offset + j]! >> 6) << 4);
  return scale | (min << 8);
}

/**
 * Dequantizes the block at byte `offset` of `bytes` into `out[outOffset .. outOffset + blockValues)`,
 * with ggml's arithmetic (f32 products, so the values equal llama.cpp's dequantization). Nothing is
 * checked: callers check sizes once per tensor.
 */
export function dequantizeBlock(
  encoding: BlockQuantization,
  bytes: Uint8Array,
  offset: number,
  out: Float32Array,
  outOffset: number,
): void {
  const half = f16ToF32Table();
  const f16At = (at: number) => half[bytes[at]! | (bytes[at + 1]! << 8)]!;
  switch (encoding) {
    case 'q8_0': {
      const d = f16At(offset);
      for (let index = 0; index < 32; index++) {
        out[outOffset + index] = d * ((bytes[offset + 2 + index]! << 24) >> 24);
      }
      return;
    }
    case 'q4_0': {
      const d = f16At(offset);
      for (let index = 0; index < 16; index++) {
        const byte = bytes[offset + 2 + index]!;
        out[outOffset + index] = ((byte & 0xf) - 8) * d;
        out[outOffset + index + 16] = ((byte >> 4) - 8) * d;
      }
      return;
    }
    case 'q4_1': {
      const d = f16At(offset);
      const m = f16At(offset + 2);
      for (let index = 0; index < 16; index++) {
        const byte = bytes[offset + 4 + index]!;
        out[outOffset + index] = fround((byte & 0xf) * d) + m;
        out[outOffset + index + 16] = fround((byte >> 4) * d) + m;
      }
      return;
    }
    case 'q5_0':
    case 'q5_1': {
      const d = f16At(offset);
      const m = encoding === 'q5_1' ? f16At(offset + 2) : 0;
      const high = offset + (encoding === 'q5_1' ? 4 : 2);
      const qh =
        (bytes[high]! | (bytes[high + 1]! << 8) | (bytes[high + 2]! << 16) | (bytes[high + 3]! << 24)) >>> 0;
      const low = high + 4;
      const bias = encoding === 'q5_0' ? 16 : 0;
      for (let index = 0; index < 16; index++) {
        const byte = bytes[low + index]!;
        const high0 = ((qh >>> index) << 4) & 0x10;
        const high1 = (qh >>> (index + 12)) & 0x10;
        const q0 = ((byte & 0xf) | high0) - bias;
        const q1 = ((byte >> 4) | high1) - bias;
        out[outOffset + index] = encoding === 'q5_0' ? q0 * d : fround(q0 * d) + m;
        out[outOffset + index + 16] = encoding === 'q5_0' ? q1 * d : fround(q1 * d) + m;
      }
      return;
    }
    case 'q4_k':
    case 'q5_k': {
      const d = f16At(offset);
      const dmin = f16At(offset + 2);
      const scales = offset + 4;
      const high = offset + 16; // q5_k: qh[32]
      let low = encoding === 'q4_k' ? offset + 16 : offset + 48;
      let target = outOffset;
      for (let group = 0; group < 4; group++) {
        const first = scaleMinK4(bytes, scales, group * 2);
        const second = scaleMinK4(bytes, scales, group * 2 + 1);
        const d1 = fround(d * (first & 0xff));
        const m1 = fround(dmin * (first >> 8));
        const d2 = fround(d * (second & 0xff));
        const m2 = fround(dmin * (second >> 8));
        const bit1 = 1 << (group * 2);
        const bit2 = bit1 << 1;
        for (let index = 0; index < 32; index++) {
          const extra = encoding === 'q5_k' && (bytes[high + index]! & bit1) !== 0 ? 16 : 0;
          out[target + index] = fround(d1 * ((bytes[low + index]! & 0xf) + extra)) - m1;
        }
        for (let index = 0; index < 32; index++) {
          const extra = encoding === 'q5_k' && (bytes[high + index]! & bit2) !== 0 ? 16 : 0;
          out[target + 32 + index] = fround(d2 * ((bytes[low + index]! >> 4) + extra)) - m2;
        }
        low += 32;
        target += 64;
      }
      return;
    }
    case 'q6_k': {
      const d = f16At(offset + 208);
      let low = offset;
      let high = offset + 128;
      let scale = offset + 192;
      let target = outOffset;
      const signedScale = (at: number) => (bytes[at]! << 24) >> 24;
      for (let half128 = 0; half128 < 2; half128++) {
        for (let index = 0; index < 32; index++) {
          const group = index >> 4;
          const h = bytes[high + index]!;
          const q1 = ((bytes[low + index]! & 0xf) | ((h & 3) << 4)) - 32;
          const q2 = ((bytes[low + index + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
          const q3 = ((bytes[low + index]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
          const q4 = ((bytes[low + index + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
          out[target + index] = fround(d * signedScale(scale + group)) * q1;
          out[target + index + 32] = fround(d * signedScale(scale + group + 2)) * q2;
          out[target + index + 64] = fround(d * signedScale(scale + group + 4)) * q3;
          out[target + index + 96] = fround(d * signedScale(scale + group + 6)) * q4;
        }
        target += 128;
        low += 64;
        high += 32;
        scale += 8;
      }
      return;
    }
  }
}

/**
 * Dequantizes `count` values (whole blocks) into a new f32 array. Cost: one pass; memory: 4 bytes a value.
 *
 * @throws InvalidArgumentError when `count` is not a multiple of the block size or `bytes` has the wrong size.
 * @example
 * ```ts
 * const values = dequantizeBlocks('q4_k', bytes, 4096);
 * ```
 */
export function dequantizeBlocks(
  encoding: BlockQuantization,
  bytes: Uint8Array,
  count: number,
): Float32Array {
  const { values, bytes: blockBytes } = BLOCKS[encoding];
  if (count % values !== 0 || bytes.byteLength !== (count / values) * blockBytes) {
    throw new InvalidArgumentError(
      `${count} ${encoding} values need whole blocks of ${values} values (${blockBytes} bytes each); got ${bytes.byteLength} bytes`,
      {
        argument: 'weight.bytes',
        expected: count % values === 0 ? (count / values) * blockBytes : `a multiple of ${values} values`,
        actual: bytes.byteLength,
      },
    );
  }
  const out = new Float32Array(count);
  for (let block = 0; block < count / values; block++) {
    dequantizeBlock(encoding, bytes, block * blockBytes, out, block * values);
  }
  return out;
}
