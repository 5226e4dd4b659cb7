import { type BlockQuantization, blockQuantizationLayout } from '@deft/core';

/** Names of the byte helpers of one binding (see {@link quantizedWeightAccessWgsl}). */
interface ByteHelpers {
  /** `fn(at: u32) -> u32`: byte `at`. */
  readonly byte: string;
  /** `fn(at: u32) -> i32`: byte `at` sign-extended. */
  readonly signedByte: string;
  /** `fn(at: u32) -> f32`: the binary16 value at byte `at` (even). */
  readonly half: string;
  /** `fn(at: u32, j: u32) -> vec2<u32>`: K-quant 6-bit scale and min `j` of the 12 bytes at `at`. */
  readonly scaleMin: string;
}

/**
 * The value `i` (0 ≤ i < block values) of the block starting at byte `o`, as WGSL statements ending in
 * `return`, per quantization: ggml's dequantization (`dequantize_row_*` in ggml-quants.c), the layout
 * `dequantizeBlock` of `@deft/core` reads on the host. The helpers are the
 * binding's byte readers.
 */
const VALUE_OF: Readonly<Record<BlockQuantization, (helpers: ByteHelpers) => string>> = {
  // block_q8_0: d f16, qs[32] i8.
  q8_0: ({ signedByte, half }) => `return ${half}(o) * f32(${signedByte}(o + 2u + i));`,
  // block_q4_0: d f16, qs[16] (value i in the low nibble of byte i, value i + 16 in the high one).
  q4_0: ({ byte, half }) =>
    `let q = (${byte}(o + 2u + (i & 15u)) >> ((i >> 4u) * 4u)) & 15u;
  return (f32(q) - 8.0) * ${half}(o);`,
  // block_q4_1: d f16, m f16, qs[16].
  q4_1: ({ byte, half }) =>
    `let q = (${byte}(o + 4u + (i & 15u)) >> ((i >> 4u) * 4u)) & 15u;
  return f32(q) * ${half}(o) + ${half}(o + 2u);`,
  // block_q5_0: d f16, qh u32 (fifth bit of value i in bit i), qs[16].
  q5_0: ({ byte, half }) =>
    `let low = (${byte}(o + 6u + (i & 15u)) >> ((i >> 4u) * 4u)) & 15u;
  let high = (${byte}(o + 2u + (i >> 3u)) >> (i & 7u)) & 1u;
  return (f32(low | (high << 4u)) - 16.0) * ${half}(o);`,
  // block_q5_1: d f16, m f16, qh u32, qs[16].
  q5_1: ({ byte, half }) =>
    `let low = (${byte}(o + 8u + (i & 15u)) >> ((i >> 4u) * 4u)) & 15u;
  let high = (${byte}(o + 4u + (i >> 3u)) >> (i & 7u)) & 1u;
  return f32(low | (high << 4u)) * ${half}(o) + ${half}(o + 2u);`,
  // block_q4_K: d f16, dmin f16, scales[12] (eight 6-bit scales and mins), qs[128]. Sub-block j = i / 32
  // of 32 values; each 64 values share 32 bytes of qs, the first 32 in the low nibbles.
  q4_k: ({ byte, half, scaleMin }) =>
    `let sub = i >> 5u;
  let scale_min = ${scaleMin}(o + 4u, sub);
  let q = (${byte}(o + 16u + (i >> 6u) * 32u + (i & 31u)) >> ((sub & 1u) * 4u)) & 15u;
  return ${half}(o) * f32(scale_min.x) * f32(q) - ${half}(o + 2u) * f32(scale_min.y);`,
  // block_q5_K: d f16, dmin f16, scales[12], qh[32] (fifth bit of value i in bit i / 32 of qh[i % 32]), qs[128].
  q5_k: ({ byte, half, scaleMin }) =>
    `let sub = i >> 5u;
  let scale_min = ${scaleMin}(o + 4u, sub);
  let low = (${byte}(o + 48u + (i >> 6u) * 32u + (i & 31u)) >> ((sub & 1u) * 4u)) & 15u;
  let high = (${byte}(o + 16u + (i & 31u)) >> sub) & 1u;
  return ${half}(o) * f32(scale_min.x) * f32(low | (high << 4u)) - ${half}(o + 2u) * f32(scale_min.y);`,
  // block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] i8, d f16. Each part of 128 values
  // has 64 bytes of ql, 32 of qh and 8 scales; quarter q of a part takes ql's low nibbles (q = 0, 1) or
  // high ones (q = 2, 3) of bytes (q & 1) · 32 + l, bits 2q of qh[l], scale l / 16 + 2q.
  q6_k: ({ byte, signedByte, half }) =>
    `let part = i >> 7u;
  let quarter = (i >> 5u) & 3u;
  let l = i & 31u;
  let low = (${byte}(o + part * 64u + (quarter & 1u) * 32u + l) >> ((quarter >> 1u) * 4u)) & 15u;
  let high = (${byte}(o + 128u + part * 32u + l) >> (quarter * 2u)) & 3u;
  let scale = ${signedByte}(o + 192u + part * 8u + (l >> 4u) + quarter * 2u);
  return ${half}(o + 208u) * f32(scale) * f32(i32(low | (high << 4u)) - 32);`,
};

/**
 * WGSL that declares a read-only binding of GGUF blocks and `fn load_<name>(index: u32) -> f32`, the
 * dequantized value of element `index` of the weight (`[rows, columns]` as `rows` runs of whole blocks,
 * so element `index` is value `index % blockValues` of block `index / blockValues`). The blocks are the
 * file's bytes uploaded as they are (the buffer padded to whole 32-bit words) and read as `u32` words:
 * bytes with `extractBits`, fp16 scales with `unpack2x16float` (every scale sits at an even byte), so
 * neither `shader-f16` nor 8-bit storage is needed. Nothing is expanded in memory: each load decodes
 * one value from its block.
 */
export function quantizedWeightAccessWgsl(
  name: string,
  binding: number,
  quantization: BlockQuantization,
): string {
  const { values, bytes } = blockQuantizationLayout(quantization);
  const body = VALUE_OF[quantization]({
    byte: `${name}_byte`,
    signedByte: `${name}_signed_byte`,
    half: `${name}_half`,
    scaleMin: `${name}_scale_min`,
  });
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
// Byte \`at\` of the blocks, unsigned and sign-extended.
fn ${name}_byte(at: u32) -> u32 {
  return extractBits(${name}[at >> 2u], (at & 3u) * 8u, 8u);
}
fn ${name}_signed_byte(at: u32) -> i32 {
  return extractBits(bitcast<i32>(${name}[at >> 2u]), (at & 3u) * 8u, 8u);
}
// The binary16 value at byte \`at\` (even).
fn ${name}_half(at: u32) -> f32 {
  return unpack2x16float(${name}[at >> 2u])[(at >> 1u) & 1u];
}
${quantization === 'q4_k' || quantization === 'q5_k' ? `${kScaleMinWgsl(name)}\n` : ''}// Element \`index\` of the ${quantization} weight (blocks of ${values} values in ${bytes} bytes).
fn load_${name}(index: u32) -> f32 {
  let o = (index / ${values}u) * ${bytes}u;
  let i = index % ${values}u;
  ${body}
}`;
}

/** ggml's `get_scale_min_k4`: the 6-bit scale (x) and min (y) `j` (0..7) of the 12 bytes at `at`. */
function kScaleMinWgsl(name: string): string {
  return `fn ${name}_scale_min(at: u32, j: u32) -> vec2<u32> {
  if (j < 4u) {
    return vec2<u32>(${name}_byte(at + j) & 63u, ${name}_byte(at + j + 4u) & 63u);
  }
  let packed = ${name}_byte(at + j + 4u);
  return vec2<u32>(
    (packed & 15u) | ((${name}_byte(at + j - 4u) >> 6u) << 4u),
    (packed >> 4u) | ((${name}_byte(at + j) >> 6u) << 4u),
  );
}`;
}
