import { type BlockQuantization, blockQuantizationLayout, f16BitsToF32, f32ToF16Bits } from '@deft/core';

/**
 * Quantizers of the GGUF block formats, for writing test models (simple round-to-nearest, not llama.cpp's
 * error-minimising search; the layouts are ggml's `block_q8_0`, `block_q4_0`, `block_q4_1`, `block_q5_0`,
 * `block_q5_1`, `block_q4_K`, `block_q5_K` and `block_q6_K`).
 */
export type TestQuantization = BlockQuantization;

/** GGML type id of each format. */
export const GGML_TYPE_IDS: Readonly<Record<TestQuantization, number>> = {
  q4_0: 2,
  q4_1: 3,
  q5_0: 6,
  q5_1: 7,
  q8_0: 8,
  q4_k: 12,
  q5_k: 13,
  q6_k: 14,
};

/** Rounds through binary16, as the stored scale is read back. */
function half(value: number): { bits: number; value: number } {
  const bits = f32ToF16Bits(value);
  return { bits, value: f16BitsToF32(bits) };
}

function writeHalf(view: DataView, offset: number, bits: number): void {
  view.setUint16(offset, bits, true);
}

/**
 * The scale `d` of a Q4_0 / Q5_0 block (the value of largest magnitude maps to `-bias`), written at byte 0,
 * and each value's quant biased by `bias` (8 or 16) into `[0, 2 · bias)`.
 */
function quantizeSymmetric(view: DataView, x: Float32Array, bias: number): number[] {
  let max = 0;
  for (const value of x) if (Math.abs(value) > Math.abs(max)) max = value;
  const d = half(max / -bias);
  writeHalf(view, 0, d.bits);
  return Array.from(x, (value) =>
    d.value === 0 ? bias : Math.max(0, Math.min(2 * bias - 1, Math.round(value / d.value) + bias)),
  );
}

/** The 4-bit values of a Q4_0 / Q4_1 block at `offset`: value `i` in the low nibble of byte `i`, `i + 16` in its high. */
function writeFourBits(out: Uint8Array, offset: number, quantized: number[]): void {
  for (let index = 0; index < 16; index++)
    out[offset + index] = quantized[index]! | (quantized[index + 16]! << 4);
}

/** The 5-bit values of a Q5_0 / Q5_1 block: the fifth bits in `qh` (u32 at `offset`), the low 4 in `qs`. */
function writeFiveBits(view: DataView, out: Uint8Array, offset: number, quantized: number[]): void {
  let qh = 0;
  for (let index = 0; index < 32; index++) if (quantized[index]! & 0x10) qh |= 1 << index;
  view.setUint32(offset, qh >>> 0, true);
  for (let index = 0; index < 16; index++) {
    out[offset + 4 + index] = (quantized[index]! & 0xf) | ((quantized[index + 16]! & 0xf) << 4);
  }
}

function quantizeBlock(format: TestQuantization, x: Float32Array, out: Uint8Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  switch (format) {
    case 'q8_0': {
      let amax = 0;
      for (const value of x) amax = Math.max(amax, Math.abs(value));
      const d = half(amax / 127);
      writeHalf(view, 0, d.bits);
      for (let index = 0; index < 32; index++) {
        const q = d.value === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(x[index]! / d.value)));
        view.setInt8(2 + index, q);
      }
      return;
    }
    case 'q4_0':
      writeFourBits(out, 2, quantizeSymmetric(view, x, 8));
      return;
    case 'q4_1':
    case 'q5_1': {
      const levels = format === 'q4_1' ? 15 : 31;
      let low = Number.POSITIVE_INFINITY;
      let high = Number.NEGATIVE_INFINITY;
      for (const value of x) {
        low = Math.min(low, value);
        high = Math.max(high, value);
      }
      const d = half((high - low) / levels);
      const m = half(low);
      writeHalf(view, 0, d.bits);
      writeHalf(view, 2, m.bits);
      const q = (value: number) =>
        d.value === 0 ? 0 : Math.max(0, Math.min(levels, Math.round((value - m.value) / d.value)));
      const quantized = Array.from(x, q);
      if (format === 'q4_1') writeFourBits(out, 4, quantized);
      else writeFiveBits(view, out, 4, quantized);
      return;
    }
    case 'q5_0':
      writeFiveBits(view, out, 2, quantizeSymmetric(view, x, 16));
      return;
    case 'q4_k':
    case 'q5_k': {
      const levels = format === 'q4_k' ? 15 : 31;
      const scales: number[] = [];
      const mins: number[] = [];
      for (let sub = 0; sub < 8; sub++) {
        let low = 0;
        let high = Number.NEGATIVE_INFINITY;
        for (let index = 0; index < 32; index++) {
          low = Math.min(low, x[sub * 32 + index]!);
          high = Math.max(high, x[sub * 32 + index]!);
        }
        scales.push((high - low) / levels);
        mins.push(-low);
      }
      const d = half(Math.max(...scales) / 63);
      const dmin = half(Math.max(...mins) / 63);
      writeHalf(view, 0, d.bits);
      writeHalf(view, 2, dmin.bits);
      const sc = scales.map((scale) => (d.value === 0 ? 0 : Math.min(63, Math.round(scale / d.value))));
      const mq = mins.map((min) => (dmin.value === 0 ? 0 : Math.min(63, Math.round(min / dmin.value))));
      for (let j = 0; j < 4; j++) {
        out[4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
        out[4 + j + 4] = mq[j]! | ((mq[j + 4]! >> 4) << 6);
        out[4 + j + 8] = (sc[j + 4]! & 0xf) | ((mq[j + 4]! & 0xf) << 4);
      }
      const low = format === 'q4_k' ? 16 : 48;
      for (let sub = 0; sub < 8; sub++) {
        const scale = Math.fround(d.value * sc[sub]!);
        const min = Math.fround(dmin.value * mq[sub]!);
        const group = sub >> 1;
        for (let index = 0; index < 32; index++) {
          const value = x[sub * 32 + index]!;
          const q = scale === 0 ? 0 : Math.max(0, Math.min(levels, Math.round((value + min) / scale)));
          const at = low + group * 32 + index;
          out[at] = out[at]! | ((q & 0xf) << (sub & 1 ? 4 : 0));
          if (format === 'q5_k' && q >= 16) out[16 + index] = out[16 + index]! | (1 << sub);
        }
      }
      return;
    }
    case 'q6_k': {
      const scales: number[] = [];
      for (let sub = 0; sub < 16; sub++) {
        let amax = 0;
        for (let index = 0; index < 16; index++) amax = Math.max(amax, Math.abs(x[sub * 16 + index]!));
        scales.push(amax / 31);
      }
      const d = half(Math.max(...scales) / 127);
      writeHalf(view, 208, d.bits);
      const sc = scales.map((scale) => (d.value === 0 ? 0 : Math.min(127, Math.round(scale / d.value))));
      for (let index = 0; index < 16; index++) view.setInt8(192 + index, sc[index]!);
      for (let value = 0; value < 256; value++) {
        const scale = Math.fround(d.value * sc[value >> 4]!);
        const q = (scale === 0 ? 0 : Math.max(-32, Math.min(31, Math.round(x[value]! / scale)))) + 32;
        const halfIndex = value >> 7;
        const within = value & 127;
        const quarter = within >> 5;
        const l = within & 31;
        const lowAt = halfIndex * 64 + l + (quarter & 1 ? 32 : 0);
        out[lowAt] = out[lowAt]! | ((q & 0xf) << (quarter >= 2 ? 4 : 0));
        const highAt = 128 + halfIndex * 32 + l;
        out[highAt] = out[highAt]! | ((q >> 4) << (quarter * 2));
      }
      return;
    }
  }
}

/**
 * Quantizes `values` (a multiple of the block size) into the format's blocks.
 * @example
 * ```ts
 * const bytes = quantizeBlocks('q4_k', weights); // 144 bytes per 256 values
 * ```
 */
export function quantizeBlocks(format: TestQuantization, values: Float32Array): Uint8Array {
  const { values: blockValues, bytes: blockBytes } = blockQuantizationLayout(format);
  if (values.length % blockValues !== 0) {
    throw new RangeError(`${format} needs a multiple of ${blockValues} values, got ${values.length}`);
  }
  const blocks = values.length / blockValues;
  const out = new Uint8Array(blocks * blockBytes);
  for (let block = 0; block < blocks; block++) {
    quantizeBlock(
      format,
      values.subarray(block * blockValues, (block + 1) * blockValues),
      out.subarray(block * blockBytes, (block + 1) * blockBytes),
    );
  }
  return out;
}

/** Values per block of a format (32 or 256). */
export function blockValues(format: TestQuantization): number {
  return blockQuantizationLayout(format).values;
}
