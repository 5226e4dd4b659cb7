/**
 * The uniform block shared by the attention and merge kernels, one per (prepared plan, scale).
 * Every field is one 32-bit word; offsets point into the plan buffer (u32 words), see
 * {@link PlanBufferLayout}.
 */
export const ATTENTION_PARAMS_FIELDS = [
  'numHeads',
  'numKvHeads',
  'numChunks',
  'numQueries',
  'chunkGridY',
  'rowSplits',
  'scaleLog2',
  'chunkTokenIndptr',
  'tokenSlots',
  'tokenSegments',
  'chunkQueryIndptr',
  'chunkQueries',
  'chunkMaskOffset',
  'mask',
  'chunkFullyVisible',
  'queryPartialIndptr',
  'queryPartials',
  'mergeGridX',
] as const;

/** Name of one field of the attention uniform block. */
export type AttentionParamsField = (typeof ATTENTION_PARAMS_FIELDS)[number];

/** Bytes of the attention uniform block (fields rounded up to 16 bytes). */
export const ATTENTION_PARAMS_BYTES = Math.ceil(ATTENTION_PARAMS_FIELDS.length / 4) * 16;

/** The WGSL `struct AttentionParams` matching {@link ATTENTION_PARAMS_FIELDS}. */
export function attentionParamsWgsl(): string {
  const fields = ATTENTION_PARAMS_FIELDS.map((name) => `  ${name}: ${name === 'scaleLog2' ? 'f32' : 'u32'},`);
  return ['struct AttentionParams {', ...fields, '}'].join('\n');
}

/** Writes the uniform block's bytes; `scaleLog2` is stored as f32, everything else as u32. */
export function encodeAttentionParams(values: Readonly<Record<AttentionParamsField, number>>): ArrayBuffer {
  const buffer = new ArrayBuffer(ATTENTION_PARAMS_BYTES);
  const words = new Uint32Array(buffer);
  const floats = new Float32Array(buffer);
  ATTENTION_PARAMS_FIELDS.forEach((name, index) => {
    if (name === 'scaleLog2') floats[index] = values[name];
    else words[index] = values[name];
  });
  return buffer;
}
