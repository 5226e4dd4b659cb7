import { BLOCK_QUANTIZATIONS } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { quantizedWeightAccessWgsl } from './block-dequant-wgsl.js';
import { gatherRowsShader } from './gather-shader.js';
import { matmulShader } from './matmul-shader.js';

describe('WGSL of quantized weight loads', () => {
  for (const quantization of BLOCK_QUANTIZATIONS) {
    it(`${quantization}: one load function over u32 words, plugged into matmul and gather`, () => {
      const source = quantizedWeightAccessWgsl('weight', 2, quantization);
      expect(source).toMatchSnapshot();
      expect(source).toContain('var<storage, read> weight: array<u32>;');
      expect(source).toContain('fn load_weight(index: u32) -> f32');
      // Only the K-quants with packed 6-bit scales and mins declare their decoder.
      expect(source.includes('weight_scale_min(')).toBe(quantization === 'q4_k' || quantization === 'q5_k');
      expect(matmulShader(quantization)).toContain(source);
      expect(gatherRowsShader(quantization)).toContain(quantizedWeightAccessWgsl('table', 1, quantization));
    });
  }
});
