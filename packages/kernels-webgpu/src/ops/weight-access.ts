import type { DType } from '@deft/core';

/**
 * WGSL that declares a read-only tensor binding and `fn load_<name>(index: u32) -> f32` reading
 * element `index` as f32: f32 tensors directly, f16 tensors from their packed binary16 pairs (element
 * `2i` in the low half of word `i`) with `unpack2x16float`, so no `shader-f16` feature is needed.
 */
export function weightAccessWgsl(name: string, binding: number, dtype: DType): string {
  if (dtype === 'f32') {
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
