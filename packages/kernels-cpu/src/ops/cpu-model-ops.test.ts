import {
  type DeviceTensor,
  type DType,
  InvalidArgumentError,
  type KVStorage,
  shapeSize,
  toF16Array,
} from '@deft/core';
import { describe, expect, it } from 'vitest';
import { createCpuModelOps } from './cpu-model-ops.js';

interface HostTensor extends DeviceTensor {
  readonly data: Float32Array | Uint16Array;
}

function tensor(shape: number[], values?: ArrayLike<number>, dtype: DType = 'f32'): HostTensor {
  const size = shapeSize(shape);
  const source = values === undefined ? new Float32Array(size) : Float32Array.from(values);
  const data = dtype === 'f16' ? toF16Array(source) : source;
  return { shape, dtype, backend: 'cpu', disposed: false, dispose() {}, data };
}

const ops = createCpuModelOps({
  tensorData: (value) => (value as HostTensor).data,
  kvLayers: (storage) => storage as unknown as HostStorage,
});

interface HostStorage extends KVStorage {
  keys(layer: number): Float32Array;
  values(layer: number): Float32Array;
}

function storage(numLayers: number, numSlots: number, rowSize: number): HostStorage {
  const keys = Array.from({ length: numLayers }, (_, layer) =>
    Float32Array.from({ length: numSlots * rowSize }, (_, index) => layer * 1000 + index),
  );
  const values = keys.map((array) => array.map((value) => -value));
  return {
    backend: 'cpu',
    disposed: false,
    dispose() {},
    descriptor: { numLayers, numPages: numSlots, pageSize: 1, numKvHeads: 1, headDim: rowSize, dtype: 'f32' },
    keys: (layer) => keys[layer]!,
    values: (layer) => values[layer]!,
  };
}

function random(seed: number, count: number): Float32Array {
  let state = seed >>> 0;
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[index] = state / 2 ** 32 - 0.5;
  }
  return values;
}

describe('cpu model ops', () => {
  it('matmul computes x · Wᵀ for f32 and f16 weights', () => {
    const [rows, inner, columns] = [3, 7, 5];
    const xValues = random(1, rows * inner);
    const weightValues = random(2, columns * inner);
    const expected = new Float64Array(rows * columns);
    for (let row = 0; row < rows; row++)
      for (let column = 0; column < columns; column++)
        for (let index = 0; index < inner; index++)
          expected[row * columns + column]! +=
            xValues[row * inner + index]! * weightValues[column * inner + index]!;
    for (const dtype of ['f32', 'f16'] as const) {
      const out = tensor([rows, columns]);
      ops.matmul(tensor([rows, inner], xValues), tensor([columns, inner], weightValues, dtype), out);
      const tolerance = dtype === 'f32' ? 1e-6 : 2e-3;
      for (let index = 0; index < expected.length; index++)
        expect(Math.abs(out.data[index]! - expected[index]!)).toBeLessThan(tolerance);
    }
  });

  it('matmul reads trailing dimensions as one and writes into a per-head layout', () => {
    const x = tensor([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    const weight = tensor([4, 4], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    const out = tensor([2, 2, 2]);
    ops.matmul(x, weight, out);
    expect(Array.from(out.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('rejects mismatched shapes, aliasing and bad ids without writing', () => {
    const out = tensor([2, 3], [9, 9, 9, 9, 9, 9]);
    expect(() => ops.matmul(tensor([2, 4]), tensor([3, 5]), out)).toThrow(InvalidArgumentError);
    const square = tensor([2, 2]);
    expect(() => ops.matmul(square, tensor([2, 2]), square)).toThrow(/must not be the same tensor/);
    expect(() => ops.embedding(tensor([4, 3]), new Int32Array([1, 4]), out)).toThrow(/out of range/);
    expect(() => ops.matmul(tensor([2, 4]), tensor([3, 4]), tensor([2, 3], undefined, 'f16'))).toThrow(/f32/);
    expect(Array.from(out.data)).toEqual([9, 9, 9, 9, 9, 9]);
  });

  it('matmulGroup equals one matmul per weight, and checks every member before running any', () => {
    const x = tensor([3, 8], random(4, 24));
    const weights = [
      tensor([5, 8], random(5, 40)),
      tensor([2, 8], random(6, 16), 'f16'),
      tensor([4, 8], random(7, 32)),
    ];
    const outs = weights.map((weight) => tensor([3, weight.shape[0]!]));
    ops.matmulGroup!(x, weights, outs);
    weights.forEach((weight, index) => {
      const alone = tensor([3, weight.shape[0]!]);
      ops.matmul(x, weight, alone);
      expect(Array.from(outs[index]!.data)).toEqual(Array.from(alone.data));
    });
    const untouched = tensor([3, 5], new Float32Array(15).fill(7));
    for (const attempt of [
      () => ops.matmulGroup!(x, [weights[0]!, tensor([2, 9])], [untouched, tensor([3, 2])]),
      () => ops.matmulGroup!(x, [weights[0]!, weights[0]!], [untouched, untouched]),
      () => ops.matmulGroup!(x, [weights[0]!], [untouched, tensor([3, 2])]),
      () => ops.matmulGroup!(x, [], []),
      () => ops.matmulGroup!(x, [weights[0]!, tensor([8, 8])], [untouched, x]),
    ])
      expect(attempt).toThrow(InvalidArgumentError);
    expect(Array.from(untouched.data)).toEqual(new Array(15).fill(7));
  });

  it('addRmsNorm equals add then rmsNorm, rows and per-head groups, and rejects aliasing unchanged', () => {
    for (const width of [8, 4]) {
      const weight = tensor([width], random(8, width));
      const fused = tensor([2, 8], random(9, 16));
      const separate = tensor([2, 8], random(9, 16));
      const residual = tensor([2, 8], random(10, 16));
      const [fusedOut, separateOut] = [tensor([2, 8]), tensor([2, 8])];
      ops.addRmsNorm!(fused, residual, weight, fusedOut, 1e-5);
      ops.add(separate, residual, separate);
      ops.rmsNorm(separate, weight, separateOut, 1e-5);
      expect(Array.from(fused.data)).toEqual(Array.from(separate.data));
      expect(Array.from(fusedOut.data)).toEqual(Array.from(separateOut.data));
    }
    const x = tensor([1, 4], [1, 2, 3, 4]);
    const residual = tensor([1, 4], [1, 1, 1, 1]);
    const weight = tensor([4], [1, 1, 1, 1]);
    expect(() => ops.addRmsNorm!(x, residual, weight, x, 1e-5)).toThrow(/must not be the same tensor/);
    expect(() => ops.addRmsNorm!(x, x, weight, tensor([1, 4]), 1e-5)).toThrow(/must not be the same tensor/);
    expect(() => ops.addRmsNorm!(x, residual, weight, residual, 1e-5)).toThrow(/must not be the same tensor/);
    expect(() => ops.addRmsNorm!(x, tensor([1, 5]), weight, tensor([1, 4]), 1e-5)).toThrow(
      InvalidArgumentError,
    );
    expect(() => ops.addRmsNorm!(x, residual, tensor([3]), tensor([1, 4]), 1e-5)).toThrow(
      InvalidArgumentError,
    );
    expect(() => ops.addRmsNorm!(x, residual, weight, tensor([1, 4]), Number.NaN)).toThrow(
      InvalidArgumentError,
    );
    expect(Array.from(x.data)).toEqual([1, 2, 3, 4]);
  });

  it('embedding and gatherRows copy rows', () => {
    const table = tensor([3, 2], [0, 1, 10, 11, 20, 21], 'f16');
    const out = tensor([2, 2]);
    ops.embedding(table, new Int32Array([2, 0]), out);
    expect(Array.from(out.data)).toEqual([20, 21, 0, 1]);
    const gathered = tensor([1, 2]);
    ops.gatherRows(out, new Int32Array([1]), gathered);
    expect(Array.from(gathered.data)).toEqual([0, 1]);
  });

  it('rmsNorm normalises rows in place', () => {
    const x = tensor([1, 4], [1, 2, 3, 4]);
    ops.rmsNorm(x, tensor([4], [1, 1, 2, 2]), x, 0);
    const rms = Math.sqrt((1 + 4 + 9 + 16) / 4);
    const expected = [1 / rms, 2 / rms, 6 / rms, 8 / rms];
    for (let index = 0; index < 4; index++) expect(x.data[index]).toBeCloseTo(expected[index]!, 6);
  });

  it('rope rotates interleaved and half pairs by position · theta^(−2i/d)', () => {
    const values = random(3, 2 * 2 * 4);
    const positions = new Int32Array([0, 5]);
    for (const style of ['interleaved', 'half'] as const) {
      const x = tensor([2, 2, 4], values);
      ops.rope(x, positions, { theta: 100, style });
      for (let row = 0; row < 2; row++) {
        for (let head = 0; head < 2; head++) {
          for (let pair = 0; pair < 2; pair++) {
            const base = (row * 2 + head) * 4;
            const [first, second] =
              style === 'interleaved'
                ? [base + 2 * pair, base + 2 * pair + 1]
                : [base + pair, base + pair + 2];
            const angle = positions[row]! * 100 ** (-pair / 2);
            const a = values[first]!;
            const b = values[second]!;
            expect(x.data[first]).toBeCloseTo(a * Math.cos(angle) - b * Math.sin(angle), 6);
            expect(x.data[second]).toBeCloseTo(a * Math.sin(angle) + b * Math.cos(angle), 6);
          }
        }
      }
    }
    expect(() => ops.rope(tensor([1, 1, 3]), new Int32Array([0]), { theta: 10 })).toThrow(/even headDim/);
  });

  it('swiglu and add are elementwise and may write in place', () => {
    const gate = tensor([3], [-1, 0, 2]);
    const up = tensor([3], [2, 3, 4]);
    ops.swiglu(gate, up, gate);
    const silu = (value: number) => value / (1 + Math.exp(-value));
    expect(Array.from(gate.data).map((value) => Number(value.toFixed(5)))).toEqual(
      [silu(-1) * 2, 0, silu(2) * 4].map((value) => Number(value.toFixed(5))),
    );
    const a = tensor([2], [1, 2]);
    ops.add(a, tensor([2], [3, 4]), a);
    expect(Array.from(a.data)).toEqual([4, 6]);
  });

  it('softmax and logSoftmax agree and sum to one', () => {
    const x = tensor(
      [2, 5],
      random(4, 10).map((value) => value * 40),
    );
    const probabilities = tensor([2, 5]);
    const logProbabilities = tensor([2, 5]);
    ops.softmax(x, probabilities);
    ops.logSoftmax(x, logProbabilities);
    for (let row = 0; row < 2; row++) {
      let sum = 0;
      for (let column = 0; column < 5; column++) {
        sum += probabilities.data[row * 5 + column]!;
        expect(Math.log(probabilities.data[row * 5 + column]!)).toBeCloseTo(
          logProbabilities.data[row * 5 + column]!,
          4,
        );
      }
      expect(sum).toBeCloseTo(1, 6);
    }
    const cold = tensor([1, 2]);
    ops.softmax(tensor([1, 2], [1, 2]), cold, 0.5);
    expect(cold.data[1]).toBeCloseTo(1 / (1 + Math.exp(-2)), 6);
  });

  it('argmax and topK order values, ties to the smaller column, NaN last', async () => {
    const x = tensor([2, 5], [1, 5, 5, Number.NaN, 2, Number.NaN, -1, -3, -1, -2]);
    expect(Array.from(await ops.argmax(x))).toEqual([1, 1]);
    const top = await ops.topK(x, 3);
    expect(Array.from(top.indices)).toEqual([1, 2, 4, 1, 3, 4]);
    expect(Array.from(top.values)).toEqual([5, 5, 2, -1, -1, -2]);
    await expect(ops.topK(x, 6)).rejects.toThrow(InvalidArgumentError);
  });

  it('copyKVSlots copies K and V rows in every layer and rejects overlapping copies', () => {
    const kv = storage(2, 6, 2);
    ops.copyKVSlots(kv, new Int32Array([4, 1]), new Int32Array([0, 5]));
    for (let layer = 0; layer < 2; layer++) {
      expect(Array.from(kv.keys(layer).subarray(0, 2))).toEqual([layer * 1000 + 8, layer * 1000 + 9]);
      expect(Array.from(kv.keys(layer).subarray(10, 12))).toEqual([layer * 1000 + 2, layer * 1000 + 3]);
      expect(Array.from(kv.values(layer).subarray(10, 12))).toEqual([
        -(layer * 1000 + 2),
        -(layer * 1000 + 3),
      ]);
    }
    expect(() => ops.copyKVSlots(kv, new Int32Array([1, 2]), new Int32Array([2, 3]))).toThrow(/disjoint/);
    expect(() => ops.copyKVSlots(kv, new Int32Array([1]), new Int32Array([6]))).toThrow(/out of range/);
  });
  it('rmsNorm with a weight narrower than the row normalises each group on its own (per-head norms)', () => {
    const [rows, heads, width] = [3, 4, 6];
    const x = tensor([rows, heads, width], random(21, rows * heads * width));
    const weight = tensor([width], random(22, width));
    const grouped = tensor([rows, heads, width]);
    ops.rmsNorm(x, weight, grouped, 1e-6);
    const flat = tensor([rows * heads, width], x.data);
    const expected = tensor([rows * heads, width]);
    ops.rmsNorm(flat, weight, expected, 1e-6);
    expect(Array.from(grouped.data)).toEqual(Array.from(expected.data));
    // The groups differ from normalising the whole row.
    const whole = tensor([rows, heads * width]);
    ops.rmsNorm(
      tensor([rows, heads * width], x.data),
      tensor([heads * width], new Float32Array(heads * width).fill(1)),
      whole,
      1e-6,
    );
    expect(Array.from(whole.data)).not.toEqual(Array.from(grouped.data));
    expect(() => ops.rmsNorm(x, tensor([5]), grouped, 1e-6)).toThrow(InvalidArgumentError);
  });

  it('rope divides each pair frequency by its factor (a constant factor f scales positions by 1/f)', () => {
    const [heads, headDim] = [2, 8];
    const values = random(31, heads * headDim);
    for (const style of ['interleaved', 'half'] as const) {
      const scaled = tensor([1, heads, headDim], values);
      ops.rope(scaled, Int32Array.of(6), {
        theta: 10000,
        style,
        frequencyFactors: new Float32Array(headDim / 2).fill(3),
      });
      const plain = tensor([1, heads, headDim], values);
      ops.rope(plain, Int32Array.of(2), { theta: 10000, style });
      for (let index = 0; index < values.length; index++)
        expect(scaled.data[index]).toBeCloseTo(plain.data[index]!, 6);
      // Per-pair factors: a factor of 1 leaves that pair as without factors.
      const mixed = tensor([1, heads, headDim], values);
      const factors = Float32Array.of(1, 1, 4, 8);
      ops.rope(mixed, Int32Array.of(5), { theta: 500, style, frequencyFactors: factors });
      const reference = tensor([1, heads, headDim], values);
      ops.rope(reference, Int32Array.of(5), { theta: 500, style });
      const pairIndex = (index: number) =>
        style === 'interleaved' ? (index % headDim) >> 1 : (index % headDim) % (headDim / 2);
      for (let index = 0; index < values.length; index++) {
        if (pairIndex(index) < 2) expect(mixed.data[index]).toBeCloseTo(reference.data[index]!, 6);
        else expect(mixed.data[index]).not.toBeCloseTo(reference.data[index]!, 3);
      }
    }
    const x = tensor([1, heads, headDim], values);
    expect(() =>
      ops.rope(x, Int32Array.of(1), { theta: 10000, frequencyFactors: new Float32Array(3).fill(1) }),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      ops.rope(x, Int32Array.of(1), { theta: 10000, frequencyFactors: Float32Array.of(1, 0, 1, 1) }),
    ).toThrow(InvalidArgumentError);
    expect(Array.from(x.data)).toEqual(Array.from(values));
  });
});
