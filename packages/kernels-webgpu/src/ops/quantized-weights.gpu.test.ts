import {
  BLOCK_QUANTIZATIONS,
  type BlockQuantization,
  blockQuantizationLayout,
  CapacityError,
  DisposedError,
  dequantizeBlocks,
  f32ToF16Bits,
  InvalidArgumentError,
  quantizedByteLength,
  type Shape,
} from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import { maxRelativeError, quantizeBlocks, SeededRandom, seededValues } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { createWebGpuBackend } from '../backend/webgpu-backend.js';
import { ownQuantizedWeight, WebGpuQuantizedWeight } from './quantized-weight.js';

const testDevice = await openTestDevice();
if (testDevice.handle === undefined)
  console.warn(`WebGPU quantized weight tests skipped: ${testDevice.skipReason}`);

/** Byte offsets of each block's binary16 scales (d, and m / dmin where the format has one). */
const HALF_OFFSETS: Record<BlockQuantization, readonly number[]> = {
  q8_0: [0],
  q4_0: [0],
  q4_1: [0, 2],
  q5_0: [0],
  q5_1: [0, 2],
  q4_k: [0, 2],
  q5_k: [0, 2],
  q6_k: [208],
};

/**
 * Blocks of random bytes with finite scales: every bit of every quant, 6-bit scale, min and high-bit
 * field is exercised (negative Q6_K scales included), which round-to-nearest quantizers never write.
 */
function randomBlocks(quantization: BlockQuantization, count: number, random: SeededRandom): Uint8Array {
  const { values, bytes } = blockQuantizationLayout(quantization);
  const out = Uint8Array.from({ length: (count / values) * bytes }, () => Math.floor(random.next() * 256));
  const view = new DataView(out.buffer);
  for (let block = 0; block < count / values; block++) {
    for (const offset of HALF_OFFSETS[quantization]) {
      view.setUint16(block * bytes + offset, f32ToF16Bits((random.next() * 2 - 1) / 16), true);
    }
  }
  return out;
}

describe.skipIf(testDevice.handle === undefined)('quantized weights on the WebGPU model ops', () => {
  const gpu = createWebGpuBackend({ device: testDevice.handle!.device });
  const cpu = createCpuBackend();
  const random = new SeededRandom(23);
  afterAll(() => {
    gpu.dispose();
    cpu.dispose();
    testDevice.handle?.dispose();
  });

  /** The same f32 tensor on both backends. */
  function pair(shape: Shape, values?: Float32Array) {
    const data =
      values ?? Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random.next() * 2 - 1);
    const onGpu = gpu.createTensor({ shape, dtype: 'f32' });
    const onCpu = cpu.createTensor({ shape, dtype: 'f32' });
    gpu.uploadTensor(onGpu, data);
    cpu.uploadTensor(onCpu, data);
    return { gpu: onGpu, cpu: onCpu };
  }

  function quantizedPair(quantization: BlockQuantization, rows: number, columns: number, blocks: Uint8Array) {
    return {
      gpu: gpu.ops.createQuantizedWeight!([rows, columns], quantization, blocks),
      cpu: cpu.ops.createQuantizedWeight!([rows, columns], quantization, blocks),
    };
  }

  it('lists every block quantization', () => {
    expect(gpu.ops.quantizations).toEqual(BLOCK_QUANTIZATIONS);
  });

  for (const quantization of BLOCK_QUANTIZATIONS) {
    const { values } = blockQuantizationLayout(quantization);

    it(`${quantization}: embedding dequantizes random blocks as ggml does (every bit field)`, async () => {
      const [rows, columns] = [5, values * 3];
      const blocks = randomBlocks(quantization, rows * columns, random);
      // As a loader hands them over: a view at an odd byte offset of a larger buffer.
      const file = new Uint8Array(blocks.byteLength + 3);
      file.set(blocks, 1);
      const table = quantizedPair(quantization, rows, columns, file.subarray(1, 1 + blocks.byteLength));
      const tokens = Int32Array.of(4, 0, 2, 2, 1, 3);
      const out = pair([tokens.length, columns]);
      gpu.ops.embedding(table.gpu, tokens, out.gpu);
      const dequantized = dequantizeBlocks(quantization, blocks, rows * columns);
      const expected = new Float32Array(tokens.length * columns);
      tokens.forEach((token, row) => {
        expected.set(dequantized.subarray(token * columns, (token + 1) * columns), row * columns);
      });
      // The same f32 operations as the host; a fused multiply-add may round the last bit differently.
      expect(maxRelativeError(await gpu.downloadTensor(out.gpu), expected)).toBeLessThan(1e-6);
    });

    it(`${quantization}: matmul against the CPU ops at awkward sizes, the table reused as a tied head`, async () => {
      for (const [rows, blocksPerRow, columns] of [
        [1, 1, 33],
        [5, 3, 19],
        [17, 2, 16],
      ] as const) {
        const inner = blocksPerRow * values;
        const weight = quantizedPair(
          quantization,
          columns,
          inner,
          quantizeBlocks(quantization, seededValues(rows * 7 + columns, columns * inner)),
        );
        const x = inner % 8 === 0 ? pair([rows, 8, inner / 8]) : pair([rows, inner]);
        const out = pair([rows, columns]);
        gpu.ops.matmul(x.gpu, weight.gpu, out.gpu);
        cpu.ops.matmul(x.cpu, weight.cpu, out.cpu);
        expect(
          maxRelativeError(await gpu.downloadTensor(out.gpu), await cpu.downloadTensor(out.cpu)),
        ).toBeLessThan(1e-5);
        // Tied embeddings: the same weight as a table.
        const tokens = Int32Array.of(columns - 1, 0);
        const rowsOut = pair([2, inner]);
        gpu.ops.embedding(weight.gpu, tokens, rowsOut.gpu);
        cpu.ops.embedding(weight.cpu, tokens, rowsOut.cpu);
        expect(
          maxRelativeError(await gpu.downloadTensor(rowsOut.gpu), await cpu.downloadTensor(rowsOut.cpu)),
        ).toBeLessThan(1e-6);
        weight.gpu.dispose();
      }
    });

    it(`${quantization}: holds the blocks and nothing more on the device`, () => {
      const [rows, columns] = [3, values * 2];
      const blocks = quantizeBlocks(quantization, seededValues(3, rows * columns));
      const weight = gpu.ops.createQuantizedWeight!([rows, columns], quantization, blocks);
      expect(weight).toBeInstanceOf(WebGpuQuantizedWeight);
      const size = (weight as WebGpuQuantizedWeight).buffer.size;
      expect(size).toBe(Math.ceil(quantizedByteLength(quantization, rows * columns) / 16) * 16);
      expect(size).toBeLessThan(rows * columns * 2);
      weight.dispose();
    });
  }

  it('refuses bad blocks before allocating, and a quantized weight anywhere but a weight', async () => {
    const create = gpu.ops.createQuantizedWeight!;
    expect(() => create([2, 48], 'q8_0', new Uint8Array(2 * 34 * 2))).toThrow(/multiple of 32/);
    expect(() => create([2, 256], 'q4_k', new Uint8Array(144))).toThrow(/needs 288 bytes/);
    expect(() => create([2, 256], 'q3_k' as BlockQuantization, new Uint8Array(288))).toThrow(
      InvalidArgumentError,
    );
    const weight = create([4, 32], 'q8_0', quantizeBlocks('q8_0', seededValues(1, 128)));
    const x = pair([2, 32]);
    const out = pair([2, 4]);
    const before = await gpu.downloadTensor(out.gpu);
    expect(() => gpu.ops.matmul(weight, weight, out.gpu)).toThrow(/only matmul's weight/);
    expect(() => gpu.ops.rmsNorm(x.gpu, weight, x.gpu, 1e-5)).toThrow(/only matmul's weight/);
    expect(() => gpu.ops.add(weight, weight, out.gpu)).toThrow(InvalidArgumentError);
    expect(() => gpu.uploadTensor(weight, new Float32Array(128))).toThrow(InvalidArgumentError);
    await expect(gpu.downloadTensor(weight)).rejects.toThrow(InvalidArgumentError);
    const foreign = cpu.ops.createQuantizedWeight!(
      [4, 32],
      'q8_0',
      quantizeBlocks('q8_0', seededValues(1, 128)),
    );
    expect(() => gpu.ops.matmul(x.gpu, foreign, out.gpu)).toThrow(InvalidArgumentError);
    weight.dispose();
    weight.dispose();
    expect(weight.disposed).toBe(true);
    expect(() => gpu.ops.matmul(x.gpu, weight, out.gpu)).toThrow(DisposedError);
    expect(() => gpu.ops.embedding(weight, Int32Array.of(0, 1), x.gpu)).toThrow(DisposedError);
    expect(await gpu.downloadTensor(out.gpu)).toEqual(before);
    await gpu.synchronize();
  });

  it('is freed by backend.dispose() with the tensors, and then refuses to be used', () => {
    const owner = createWebGpuBackend({ device: testDevice.handle!.device });
    const blocks = quantizeBlocks('q4_k', seededValues(4, 2 * 256));
    const kept = owner.ops.createQuantizedWeight!([2, 256], 'q4_k', blocks) as WebGpuQuantizedWeight;
    const early = owner.ops.createQuantizedWeight!([2, 256], 'q4_k', blocks);
    const x = owner.createTensor({ shape: [1, 256], dtype: 'f32' });
    const out = owner.createTensor({ shape: [1, 2], dtype: 'f32' });
    // Its buffer is destroyed exactly once, by whichever dispose comes first.
    let destroyed = 0;
    const destroy = kept.buffer.destroy.bind(kept.buffer);
    kept.buffer.destroy = () => {
      destroyed++;
      destroy();
    };
    // One disposed by its holder first is no longer tracked; the backend's dispose skips it.
    early.dispose();
    owner.dispose();
    expect(kept.disposed).toBe(true);
    expect(destroyed).toBe(1);
    expect(early.disposed).toBe(true);
    expect(x.disposed).toBe(true);
    kept.dispose();
    expect(destroyed).toBe(1);
    expect(() => owner.ops.matmul(x, kept, out)).toThrow(DisposedError);
    // The ops' own resolution of the weight refuses it too, not only the disposed backend.
    expect(() => ownQuantizedWeight(kept.owner, 'weight', kept)).toThrow(DisposedError);
  });

  it('refuses a weight larger than one storage binding with a CapacityError before creating it', () => {
    const small = createWebGpuBackend({
      device: new Proxy(testDevice.handle!.device, {
        get(target, property) {
          if (property === 'limits') {
            return {
              ...target.limits,
              maxStorageBufferBindingSize: 256,
              maxBufferSize: target.limits.maxBufferSize,
            };
          }
          const value = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }),
    });
    const blocks = quantizeBlocks('q4_k', seededValues(2, 512));
    expect(() => small.ops.createQuantizedWeight!([2, 256], 'q4_k', blocks)).toThrow(CapacityError);
    expect(() => small.ops.createQuantizedWeight!([1, 256], 'q4_k', blocks.subarray(0, 144))).not.toThrow();
    small.dispose();
  });
});
