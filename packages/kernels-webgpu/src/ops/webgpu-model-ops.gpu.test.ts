import {
  type DeviceTensor,
  DisposedError,
  type DType,
  InvalidArgumentError,
  isModelBackend,
  type Shape,
} from '@deft/core';
import { createCpuBackend } from '@deft/kernels-cpu';
import { maxRelativeError, SeededRandom } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { createWebGpuBackend } from '../backend/webgpu-backend.js';

const testDevice = await openTestDevice();
if (testDevice.handle === undefined) console.warn(`WebGPU model ops tests skipped: ${testDevice.skipReason}`);

/** Tolerance on the error relative to the largest reference magnitude, per weight dtype. */
const TOLERANCE: Record<DType, number> = { f32: 1e-5, f16: 2e-3 };

describe.skipIf(testDevice.handle === undefined)('WebGPU model ops against the CPU ops', () => {
  const gpu = createWebGpuBackend({ device: testDevice.handle!.device });
  const cpu = createCpuBackend();
  const random = new SeededRandom(11);
  afterAll(() => {
    gpu.dispose();
    cpu.dispose();
    testDevice.handle?.dispose();
  });

  const randomData = (size: number, spread = 2) =>
    Float32Array.from({ length: size }, () => (random.next() * 2 - 1) * spread);

  /** The same tensor on both backends. */
  function pair(shape: Shape, dtype: DType = 'f32', data?: Float32Array) {
    const values = data ?? randomData(shape.reduce((a, b) => a * b, 1));
    const onGpu = gpu.createTensor({ shape, dtype });
    const onCpu = cpu.createTensor({ shape, dtype });
    gpu.uploadTensor(onGpu, values);
    cpu.uploadTensor(onCpu, values);
    return { gpu: onGpu, cpu: onCpu };
  }

  async function expectClose(
    tensors: { gpu: DeviceTensor; cpu: DeviceTensor },
    tolerance: number,
  ): Promise<number> {
    const error = maxRelativeError(
      await gpu.downloadTensor(tensors.gpu),
      await cpu.downloadTensor(tensors.cpu),
    );
    expect(error).toBeLessThan(tolerance);
    return error;
  }

  it('is a ModelBackend', () => {
    expect(isModelBackend(gpu)).toBe(true);
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`matmul with ${dtype} weights at awkward sizes (x as [M, heads, headDim] too)`, async () => {
      for (const [rows, inner, columns] of [
        [1, 64, 512],
        [5, 37, 19],
        [17, 70, 33],
        [33, 16, 1],
      ] as const) {
        const x = inner === 70 ? pair([rows, 7, 10]) : pair([rows, inner]);
        const weight = pair([columns, inner], dtype);
        const out = pair([rows, columns]);
        gpu.ops.matmul(x.gpu, weight.gpu, out.gpu);
        cpu.ops.matmul(x.cpu, weight.cpu, out.cpu);
        await expectClose(out, TOLERANCE[dtype]);
      }
    });

    it(`embedding with an ${dtype} table`, async () => {
      const table = pair([13, 10], dtype);
      const tokens = Int32Array.of(0, 12, 5, 5, 7, 1, 12);
      const out = pair([tokens.length, 10]);
      gpu.ops.embedding(table.gpu, tokens, out.gpu);
      cpu.ops.embedding(table.cpu, tokens, out.cpu);
      await expectClose(out, TOLERANCE[dtype]);
    });

    it(`rmsNorm with ${dtype} weights, into another tensor and in place`, async () => {
      for (const width of [301, 64, 3]) {
        const x = pair([3, width]);
        const weight = pair([width], dtype);
        const out = pair([3, width]);
        gpu.ops.rmsNorm(x.gpu, weight.gpu, out.gpu, 1e-5);
        cpu.ops.rmsNorm(x.cpu, weight.cpu, out.cpu, 1e-5);
        await expectClose(out, TOLERANCE[dtype]);
        gpu.ops.rmsNorm(x.gpu, weight.gpu, x.gpu, 1e-6);
        cpu.ops.rmsNorm(x.cpu, weight.cpu, x.cpu, 1e-6);
        await expectClose(x, TOLERANCE[dtype]);
      }
    });

    it(`rmsNorm per head with ${dtype} weights (a weight narrower than the row)`, async () => {
      const x = pair([3, 4, 16]);
      const weight = pair([16], dtype);
      const out = pair([3, 4, 16]);
      gpu.ops.rmsNorm(x.gpu, weight.gpu, out.gpu, 1e-6);
      cpu.ops.rmsNorm(x.cpu, weight.cpu, out.cpu, 1e-6);
      await expectClose(out, TOLERANCE[dtype]);
    });
  }

  for (const style of ['interleaved', 'half'] as const) {
    it(`rope (${style}) at small and large positions`, async () => {
      const x = pair([4, 3, 8]);
      const positions = Int32Array.of(0, 5, 1000, 4095);
      gpu.ops.rope(x.gpu, positions, { theta: 10000, style });
      cpu.ops.rope(x.cpu, positions, { theta: 10000, style });
      await expectClose(x, TOLERANCE.f32);
      const frequencyFactors = Float32Array.of(1, 2.5, 8, 32);
      gpu.ops.rope(x.gpu, positions, { theta: 500000, style, frequencyFactors });
      cpu.ops.rope(x.cpu, positions, { theta: 500000, style, frequencyFactors });
      await expectClose(x, TOLERANCE.f32);
    });
  }

  it('swiglu and add, with every allowed aliasing', async () => {
    for (const op of ['swiglu', 'add'] as const) {
      const a = pair([3, 37], 'f32', randomData(111, 8));
      const b = pair([3, 37]);
      const out = pair([3, 37]);
      gpu.ops[op](a.gpu, b.gpu, out.gpu);
      cpu.ops[op](a.cpu, b.cpu, out.cpu);
      await expectClose(out, TOLERANCE.f32);
      gpu.ops[op](a.gpu, b.gpu, a.gpu);
      cpu.ops[op](a.cpu, b.cpu, a.cpu);
      await expectClose(a, TOLERANCE.f32);
      gpu.ops[op](a.gpu, b.gpu, b.gpu);
      cpu.ops[op](a.cpu, b.cpu, b.cpu);
      await expectClose(b, TOLERANCE.f32);
      gpu.ops[op](b.gpu, b.gpu, b.gpu);
      cpu.ops[op](b.cpu, b.cpu, b.cpu);
      await expectClose(b, TOLERANCE.f32);
    }
  });

  it('softmax (with a temperature) and logSoftmax, into another tensor and in place', async () => {
    for (const columns of [1000, 7, 1]) {
      const x = pair([3, columns], 'f32', randomData(3 * columns, 5));
      const out = pair([3, columns]);
      gpu.ops.softmax(x.gpu, out.gpu, 0.7);
      cpu.ops.softmax(x.cpu, out.cpu, 0.7);
      await expectClose(out, TOLERANCE.f32);
      gpu.ops.logSoftmax(x.gpu, out.gpu);
      cpu.ops.logSoftmax(x.cpu, out.cpu);
      await expectClose(out, TOLERANCE.f32);
      gpu.ops.softmax(x.gpu, x.gpu);
      cpu.ops.softmax(x.cpu, x.cpu);
      await expectClose(x, TOLERANCE.f32);
      gpu.ops.logSoftmax(x.gpu, x.gpu);
      cpu.ops.logSoftmax(x.cpu, x.cpu);
      await expectClose(x, TOLERANCE.f32);
    }
  });

  it('gatherRows', async () => {
    const x = pair([6, 2, 5]);
    const rows = Int32Array.of(5, 0, 0, 3);
    const out = pair([4, 10]);
    gpu.ops.gatherRows(x.gpu, rows, out.gpu);
    cpu.ops.gatherRows(x.cpu, rows, out.cpu);
    expect(maxRelativeError(await gpu.downloadTensor(out.gpu), await cpu.downloadTensor(out.cpu))).toBe(0);
  });

  it('argmax and topK, ties to the smaller column', async () => {
    const data = randomData(3 * 50);
    data[7] = 9;
    data[20] = 9;
    data[60] = Number.NaN;
    const x = pair([3, 50], 'f32', data);
    expect(await gpu.ops.argmax(x.gpu)).toEqual(await cpu.ops.argmax(x.cpu));
    expect((await gpu.ops.argmax(x.gpu))[0]).toBe(7);
    for (const k of [1, 4, 50]) expect(await gpu.ops.topK(x.gpu, k)).toEqual(await cpu.ops.topK(x.cpu, k));
    await expect(gpu.ops.topK(x.gpu, 51)).rejects.toThrow(InvalidArgumentError);
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`copyKVSlots moves K and V of every layer (${dtype} KV)`, async () => {
      const descriptor = { numLayers: 2, numPages: 3, pageSize: 4, numKvHeads: 2, headDim: 4, dtype };
      const gpuStorage = gpu.createKVStorage(descriptor);
      const cpuStorage = cpu.createKVStorage(descriptor);
      const slots = Int32Array.from({ length: 12 }, (_, slot) => slot);
      for (let layer = 0; layer < 2; layer++) {
        const k = randomData(12 * 8);
        const v = randomData(12 * 8);
        gpu.writeKV(gpuStorage, layer, slots, k, v);
        cpu.writeKV(cpuStorage, layer, slots, k, v);
      }
      const source = Int32Array.of(1, 2, 9);
      const target = Int32Array.of(4, 11, 0);
      gpu.ops.copyKVSlots(gpuStorage, source, target);
      cpu.ops.copyKVSlots(cpuStorage, source, target);
      for (let layer = 0; layer < 2; layer++) {
        expect(await gpu.readKV(gpuStorage, layer, slots)).toEqual(
          await cpu.readKV(cpuStorage, layer, slots),
        );
      }
      expect(() => gpu.ops.copyKVSlots(gpuStorage, Int32Array.of(1), Int32Array.of(1))).toThrow(
        InvalidArgumentError,
      );
      expect(() => gpu.ops.copyKVSlots(gpuStorage, Int32Array.of(1), Int32Array.of(12))).toThrow(
        InvalidArgumentError,
      );
      gpuStorage.dispose();
      cpuStorage.dispose();
    });
  }

  it('rejects bad operands before writing anything', async () => {
    const x = pair([2, 8]);
    const weight = pair([3, 8]);
    const out = pair([2, 3]);
    const before = await gpu.downloadTensor(out.gpu);
    expect(() => gpu.ops.matmul(x.gpu, weight.gpu, x.gpu)).toThrow(InvalidArgumentError);
    expect(() => gpu.ops.matmul(x.gpu, pair([3, 7]).gpu, out.gpu)).toThrow(InvalidArgumentError);
    expect(() => gpu.ops.matmul(x.cpu, weight.gpu, out.gpu)).toThrow(InvalidArgumentError);
    expect(() => gpu.ops.embedding(weight.gpu, Int32Array.of(0, 3), out.gpu)).toThrow(InvalidArgumentError);
    expect(() => gpu.ops.softmax(out.gpu, out.gpu, 0)).toThrow(InvalidArgumentError);
    expect(() => gpu.ops.rope(x.gpu, Int32Array.of(0, 1), { theta: 10000 })).toThrow(InvalidArgumentError);
    expect(() => gpu.ops.add(x.gpu, out.gpu, out.gpu)).toThrow(InvalidArgumentError);
    const disposed = pair([2, 3]);
    disposed.gpu.dispose();
    expect(() => gpu.ops.add(out.gpu, out.gpu, disposed.gpu)).toThrow(DisposedError);
    expect(await gpu.downloadTensor(out.gpu)).toEqual(before);
    await gpu.synchronize();
  });
});
