import { type BlockQuantization, type DType, isBlockQuantization } from '@deft/core';
import { quantizedWeightAccessWgsl } from './block-dequant-wgsl.js';

/** How a weight's buffer holds its values: f32, packed f16 pairs, or GGUF blocks. */
export type WeightFormat = DType | BlockQuantization;

/**
 * WGSL that declares a read-only tensor binding and `fn load_<name>(index: u32) -> f32` reading
 * element `index` as f32: f32 tensors directly, f16 tensors from their packed binary16 pairs (element
 * `2i` in the low half of word `i`) with `unpack2x16float`, so no `shader-f16` feature is needed, and
 * quantized weights from their GGUF blocks, dequantizing the one value (`quantizedWeightAccessWgsl`).
 */
export function weightAccessWgsl(name: string, binding: number, format: WeightFormat): string {
  if (isBlockQuantization(format)) return quantizedWeightAccessWgsl(name, binding, format);
  if (format === 'f32') {
    return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn load_${name}(index: u32) -> f32 {
  return ${name}[index];
}`;
  }
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn load_${name}(index: u32) -> f32 {
  return unpack2x16float(${name}[index >> 1u])[index & 1u];
}`;
}
