import {
  BLOCK_QUANTIZATIONS,
  blockQuantizationLayout,
  dequantizeBlocks,
  InvalidArgumentError,
} from '@deft/core';
import { GGML_TYPE_IDS, quantizeBlocks, seededValues } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from '../backend/create-cpu-backend.js';

/** Largest error round-to-nearest may leave per value, relative to the block's largest magnitude. */
const STEP: Record<string, number> = {
  q8_0: 1 / 127,
  q4_0: 1 / 8,
  q4_1: 1 / 7.5,
  q5_0: 1 / 16,
  q5_1: 1 / 15.5,
  q4_k: 1 / 7.5,
  q5_k: 1 / 15.5,
  q6_k: 1 / 31,
};

describe('quantized weights on the CPU backend', () => {
  for (const quantization of BLOCK_QUANTIZATIONS) {
    it(`${quantization}: blocks round-trip within the format's step, matmul and embedding dequantize inside`, async () => {
      expect(GGML_TYPE_IDS[quantization]).toBeGreaterThan(0);
      const backend = createCpuBackend();
      const { values: blockValues } = blockQuantizationLayout(quantization);
      const [rows, columns] = [7, blockValues * 2];
      const weights = seededValues(17, rows * columns);
      const blocks = quantizeBlocks(quantization, weights);
      const dequantized = dequantizeBlocks(quantization, blocks, rows * columns);
      // Round-to-nearest leaves at most about half a step (plus the rounding of the scales) per value.
      for (let index = 0; index < weights.length; index++) {
        expect(Math.abs(dequantized[index]! - weights[index]!)).toBeLessThan(
          STEP[quantization]! * 0.5 * 1.2 + 1e-3,
        );
      }
      const weight = backend.ops.createQuantizedWeight!([rows, columns], quantization, blocks);
      expect(weight.quantization).toBe(quantization);
      expect(Array.from(await backend.downloadTensor(weight))).toEqual(Array.from(dequantized));

      const x = backend.createTensor({ shape: [3, columns], dtype: 'f32' });
      backend.uploadTensor(x, seededValues(5, 3 * columns));
      const reference = backend.createTensor({ shape: [rows, columns], dtype: 'f32' });
      backend.uploadTensor(reference, dequantized);
      const [out, expected] = [0, 1].map(() => backend.createTensor({ shape: [3, rows], dtype: 'f32' })) as [
        ReturnType<typeof backend.createTensor>,
        ReturnType<typeof backend.createTensor>,
      ];
      backend.ops.matmul(x, weight, out);
      backend.ops.matmul(x, reference, expected);
      expect(Array.from(await backend.downloadTensor(out))).toEqual(
        Array.from(await backend.downloadTensor(expected)),
      );

      const tokens = Int32Array.of(6, 0, 3);
      const rowsOut = backend.createTensor({ shape: [3, columns], dtype: 'f32' });
      backend.ops.embedding(weight, tokens, rowsOut);
      const gathered = await backend.downloadTensor(rowsOut);
      for (let row = 0; row < 3; row++) {
        const token = tokens[row]!;
        expect(Array.from(gathered.subarray(row * columns, (row + 1) * columns))).toEqual(
          Array.from(dequantized.subarray(token * columns, (token + 1) * columns)),
        );
      }
      // A quantized weight is nothing but a weight.
      expect(() => backend.ops.matmul(weight, reference, out)).toThrow(InvalidArgumentError);
      expect(() => backend.ops.rmsNorm(x, weight, x, 1e-5)).toThrow(InvalidArgumentError);
      expect(() => backend.uploadTensor(weight, dequantized)).toThrow(InvalidArgumentError);
      backend.dispose();
    });
  }

  it('refuses blocks that do not fit the shape, before allocating', () => {
    const backend = createCpuBackend();
    const create = backend.ops.createQuantizedWeight!;
    expect(backend.ops.quantizations).toEqual(BLOCK_QUANTIZATIONS);
    expect(() => create([2, 48], 'q8_0', new Uint8Array(2 * 34 * 2))).toThrow(/multiple of 32/);
    expect(() => create([2, 256], 'q4_k', new Uint8Array(144))).toThrow(/needs 288 bytes/);
    expect(() => create([2, 32], 'q2_k' as never, new Uint8Array(40))).toThrow(/not one of/);
    expect(() => create([0, 32], 'q8_0', new Uint8Array(0))).toThrow(InvalidArgumentError);
  });
});
