import { blockQuantizationLayout, dequantizeBlock, f16ToF32Table } from '@deft/core';
import type { QuantizedRows } from '../backend/cpu-tensor.js';

/** A weight's host memory: f32 values, binary16 bits, or GGUF blocks. */
export type WeightData = Float32Array | Uint16Array | QuantizedRows;

/**
 * Decodes `count` values starting at value `offset` of `source` (f32, binary16 bits, or GGUF blocks,
 * dequantized block by block: `offset` and `count` are whole blocks there) into `target[0..count)`.
 */
export function readRowAsF32(source: WeightData, offset: number, count: number, target: Float32Array): void {
  if (!(source instanceof Float32Array || source instanceof Uint16Array)) {
    const { values, bytes } = blockQuantizationLayout(source.quantization);
    const first = offset / values;
    for (let block = 0; block < count / values; block++) {
      dequantizeBlock(source.quantization, source.blocks, (first + block) * bytes, target, block * values);
    }
    return;
  }
  if (source instanceof Float32Array) {
    target.set(source.subarray(offset, offset + count));
    return;
  }
  const values = f16ToF32Table();
  for (let index = 0; index < count; index++) target[index] = values[source[offset + index]!]!;
}
