/// <reference types="@webgpu/types" />
import {
  BLOCK_QUANTIZATIONS,
  type BlockQuantization,
  type DeviceTensor,
  type ModelOps,
  type RopeOptions,
  shapeSize,
  type TopKResult,
} from '@deft/core';
import {
  argmaxHost,
  checkMatmulOperands,
  checkQuantizedWeight,
  checkRopeOperands,
  checkSlotCopy,
  checkTemperature,
  checkTopK,
  matrixOf,
  requireDistinct,
  requireEqual,
  requireF32,
  requireIndices,
  rmsNormGroups,
  topKHost,
} from '@deft/core/backend-kit';
import { assertFinite } from '@deft/core/validate';
import { linearDispatchGrid } from '../backend/dispatch-grid.js';
import { BUFFER_USAGE } from '../device/gpu-flags.js';
import { COPY_SLOTS_OFFSET, copyKvSlotsShader } from './copy-kv-slots-shader.js';
import { type ElementwiseKind, elementwiseShader } from './elementwise-shader.js';
import { GATHER_INDICES_OFFSET, gatherRowsShader } from './gather-shader.js';
import { matmulShader } from './matmul-shader.js';
import type { ModelOpsContext } from './model-ops-context.js';
import { ELEMENT_THREADS, MATMUL_TILE } from './op-threads.js';
import {
  blocksBufferSize,
  ownQuantizedWeight,
  uploadBlocks,
  WebGpuQuantizedWeight,
} from './quantized-weight.js';
import { rmsNormShader } from './rms-norm-shader.js';
import { ROPE_TABLE_OFFSET, ropeShader } from './rope-shader.js';
import { type SoftmaxKind, softmaxShader } from './softmax-shader.js';
import type { WeightFormat } from './weight-access.js';

const align16 = (bytes: number): number => Math.max(16, Math.ceil(bytes / 16) * 16);

/** One dispatch of a kernel: the buffers of bindings 1.. (binding 0 is the params) and the grid. */
interface Dispatch {
  readonly buffers: readonly (readonly [binding: number, buffer: GPUBuffer])[];
  readonly grid: readonly [number, number];
}

/** The bits of `value` rounded to f32, for a `u32` params slot read with `bitcast<f32>`. */
function f32Bits(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0]!;
}

/**
 * The model ops of the WebGPU backend ({@link ModelOps}): WGSL kernels on the backend's tensors, f32
 * arithmetic, f16 weights read from their packed binary16 pairs, and weights in every GGUF block
 * quantization (`createQuantizedWeight`) kept as their blocks and dequantized inside `matmul` and
 * `embedding`. Each op validates every operand, then enqueues its dispatch in one submitted command
 * buffer; `argmax` and `topK` read the rows back and finish on the host.
 *
 * @param context the owning backend's device, pipeline cache, tensor resolution and the set of
 *   resources it disposes with itself (the quantized weights made here)
 * @throws InvalidArgumentError / DisposedError from each op, as {@link ModelOps} documents; device
 *   errors surface as `BackendError` from `synchronize()` and the reads.
 * @example
 * ```ts
 * const backend = createWebGpuBackend({ device });
 * backend.ops.matmul(x, weight, out); // the ops built here
 * ```
 */
export function createWebGpuModelOps(context: ModelOpsContext): ModelOps {
  const { device } = context;
  /** Marks the quantized weights these ops created (the backend's tensors are resolved by `context`). */
  const owner = {};

  /** The backend's tensor for an operand that must not be quantized (the message names the rule). */
  const tensorOf = (argument: string, tensor: DeviceTensor) => {
    if (ownQuantizedWeight(owner, argument, tensor) !== undefined) requireF32(tensor, argument);
    return context.tensor(argument, tensor);
  };

  /** The buffer of `matmul`'s weight or `embedding`'s table and how it holds its values. */
  const weightOf = (argument: string, tensor: DeviceTensor): { buffer: GPUBuffer; format: WeightFormat } => {
    const quantized = ownQuantizedWeight(owner, argument, tensor);
    if (quantized !== undefined) return { buffer: quantized.buffer, format: quantized.quantization };
    return { buffer: context.tensor(argument, tensor).buffer, format: tensor.dtype };
  };

  const submit = (what: string, pipeline: GPUComputePipeline, params: Uint32Array, dispatches: Dispatch[]) =>
    context.scoped(what, () => {
      const paramsBuffer = device.createBuffer({
        size: align16(params.byteLength),
        usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_DST,
        label: `deft ${what} params`,
      });
      device.queue.writeBuffer(paramsBuffer, 0, params.buffer, params.byteOffset, params.byteLength);
      const encoder = device.createCommandEncoder({ label: `deft ${what}` });
      const pass = encoder.beginComputePass({ label: `deft ${what}` });
      pass.setPipeline(pipeline);
      for (const dispatch of dispatches) {
        pass.setBindGroup(
          0,
          device.createBindGroup({
            label: `deft ${what}`,
            layout: pipeline.getBindGroupLayout(0),
            entries: [
              { binding: 0, resource: { buffer: paramsBuffer } },
              ...dispatch.buffers.map(([binding, buffer]) => ({ binding, resource: { buffer } })),
            ],
          }),
        );
        pass.dispatchWorkgroups(dispatch.grid[0], dispatch.grid[1]);
      }
      pass.end();
      device.queue.submit([encoder.finish()]);
      paramsBuffer.destroy();
    });

  const elementGrid = (count: number) =>
    linearDispatchGrid(Math.ceil(count / ELEMENT_THREADS), context.maxWorkgroupsPerDimension);
  const rowGrid = (rows: number) => linearDispatchGrid(rows, context.maxWorkgroupsPerDimension);

  const gather = (
    what: string,
    source: { buffer: GPUBuffer; format: WeightFormat },
    indices: Int32Array,
    out: DeviceTensor,
    width: number,
  ) => {
    const outTensor = tensorOf('out', out);
    const count = indices.length * width;
    if (count === 0) return;
    const grid = elementGrid(count);
    const params = new Uint32Array(GATHER_INDICES_OFFSET + indices.length);
    params.set([indices.length, width, grid[0]]);
    params.set(indices, GATHER_INDICES_OFFSET);
    const pipeline = context.pipeline(`op-gather:${source.format}`, () => gatherRowsShader(source.format));
    submit(what, pipeline, params, [
      {
        buffers: [
          [1, source.buffer],
          [2, outTensor.buffer],
        ],
        grid,
      },
    ]);
  };

  const elementwise = (kind: ElementwiseKind, a: DeviceTensor, b: DeviceTensor, out: DeviceTensor) => {
    const names = kind === 'add' ? (['a', 'b'] as const) : (['gate', 'up'] as const);
    const first = tensorOf(names[0], a);
    const second = tensorOf(names[1], b);
    const output = tensorOf('out', out);
    requireF32(a, names[0]);
    requireF32(b, names[1]);
    requireF32(out, 'out');
    requireEqual(names[1], 'size', shapeSize(a.shape), shapeSize(b.shape), b);
    requireEqual('out', 'size', shapeSize(a.shape), shapeSize(out.shape), out);
    const count = shapeSize(out.shape);
    if (count === 0) return;
    const aliasing = { firstIsOut: a === out, secondIsOut: b === out };
    const pipeline = context.pipeline(`op-${kind}:${aliasing.firstIsOut}:${aliasing.secondIsOut}`, () =>
      elementwiseShader(kind, aliasing),
    );
    const grid = elementGrid(count);
    const buffers: [number, GPUBuffer][] = [[3, output.buffer]];
    if (!aliasing.firstIsOut) buffers.push([1, first.buffer]);
    if (!aliasing.secondIsOut) buffers.push([2, second.buffer]);
    submit(kind, pipeline, Uint32Array.of(count, grid[0]), [{ buffers, grid }]);
  };

  const rowSoftmax = (kind: SoftmaxKind, x: DeviceTensor, out: DeviceTensor, temperature: number) => {
    const input = tensorOf('x', x);
    const output = tensorOf('out', out);
    const view = matrixOf(x, 'x');
    requireF32(x, 'x');
    requireF32(out, 'out');
    requireEqual('out', 'size', shapeSize(x.shape), shapeSize(out.shape), out);
    checkTemperature(temperature);
    if (view.rows === 0 || view.columns === 0) return;
    const inPlace = x === out;
    const pipeline = context.pipeline(`op-${kind}:${inPlace}`, () => softmaxShader(kind, inPlace));
    const grid = rowGrid(view.rows);
    const buffers: [number, GPUBuffer][] = [[2, output.buffer]];
    if (!inPlace) buffers.push([1, input.buffer]);
    submit(kind, pipeline, Uint32Array.of(view.rows, view.columns, f32Bits(temperature), grid[0]), [
      { buffers, grid },
    ]);
  };

  const readRows = async (
    x: DeviceTensor,
  ): Promise<{ data: Float32Array; rows: number; columns: number }> => {
    context.assertUsable();
    const tensor = tensorOf('x', x);
    const view = matrixOf(x, 'x');
    requireF32(x, 'x');
    const raw = await context.read(tensor.buffer, align16(tensor.size * 4), 'read rows');
    return { data: new Float32Array(raw, 0, tensor.size), ...view };
  };

  return {
    quantizations: BLOCK_QUANTIZATIONS,

    createQuantizedWeight(shape, quantization: BlockQuantization, blocks) {
      context.assertUsable();
      const checked = checkQuantizedWeight(shape, quantization, blocks);
      const size = blocksBufferSize(device.limits, quantization, checked, blocks.byteLength);
      const buffer = context.scoped('createQuantizedWeight', () =>
        uploadBlocks(device, quantization, blocks, size),
      );
      // Tracked by the backend, so that `backend.dispose()` frees it as it frees the backend's tensors.
      const weight = new WebGpuQuantizedWeight(owner, checked, quantization, buffer, (disposed) =>
        context.resources.delete(disposed),
      );
      context.resources.add(weight);
      return weight;
    },

    embedding(table, tokens, out) {
      context.assertUsable();
      const source = weightOf('table', table);
      tensorOf('out', out);
      const tableView = matrixOf(table, 'table');
      const outView = matrixOf(out, 'out');
      requireF32(out, 'out');
      requireEqual('out', 'rows', tokens.length, outView.rows, out);
      requireEqual('out', 'row width', tableView.columns, outView.columns, out);
      requireDistinct(table, out, 'table', 'out');
      requireIndices('tokens', tokens, tableView.rows);
      gather('embedding', source, tokens, out, tableView.columns);
    },

    matmul(x, weight, out) {
      context.assertUsable();
      const input = tensorOf('x', x);
      const weights = weightOf('weight', weight);
      const output = tensorOf('out', out);
      const shape = checkMatmulOperands(x, weight, out);
      requireDistinct(weight, out, 'weight', 'out');
      const rows = shape.m;
      const columns = shape.n;
      if (rows === 0 || columns === 0) return;
      const pipeline = context.pipeline(`op-matmul:${weights.format}`, () => matmulShader(weights.format));
      submit('matmul', pipeline, Uint32Array.of(rows, columns, shape.k), [
        {
          buffers: [
            [1, input.buffer],
            [2, weights.buffer],
            [3, output.buffer],
          ],
          grid: [Math.ceil(columns / MATMUL_TILE), Math.ceil(rows / MATMUL_TILE)],
        },
      ]);
    },

    rmsNorm(x, weight, out, epsilon) {
      context.assertUsable();
      const input = tensorOf('x', x);
      const weights = tensorOf('weight', weight);
      const output = tensorOf('out', out);
      requireF32(x, 'x');
      requireF32(out, 'out');
      // A weight narrower than the row normalises each group of the row on its own (per-head norms).
      const view = rmsNormGroups(matrixOf(x, 'x'), weight);
      requireEqual('out', 'size', shapeSize(x.shape), shapeSize(out.shape), out);
      requireDistinct(weight, out, 'weight', 'out');
      assertFinite('epsilon', epsilon);
      if (view.rows === 0 || view.columns === 0) return;
      const inPlace = x === out;
      const pipeline = context.pipeline(`op-rms-norm:${weight.dtype}:${inPlace}`, () =>
        rmsNormShader(weight.dtype, inPlace),
      );
      const grid = rowGrid(view.rows);
      const buffers: [number, GPUBuffer][] = [
        [2, weights.buffer],
        [3, output.buffer],
      ];
      if (!inPlace) buffers.push([1, input.buffer]);
      submit('rmsNorm', pipeline, Uint32Array.of(view.rows, view.columns, f32Bits(epsilon), grid[0]), [
        { buffers, grid },
      ]);
    },

    rope(x, positions, options: RopeOptions) {
      context.assertUsable();
      const tensor = tensorOf('x', x);
      const { rows, numHeads, headDim, style } = checkRopeOperands(x, positions, options);
      const pairs = headDim / 2;
      const count = rows * numHeads * pairs;
      if (count === 0) return;
      // The angles are computed in f64 on the host, as the CPU backend does: f32 angles lose accuracy
      // at large positions.
      const params = new Uint32Array(ROPE_TABLE_OFFSET + rows * pairs * 2);
      const table = new Float32Array(params.buffer, ROPE_TABLE_OFFSET * 4);
      for (let row = 0; row < rows; row++) {
        for (let pair = 0; pair < pairs; pair++) {
          const angle =
            (positions[row]! * options.theta ** ((-2 * pair) / headDim)) /
            (options.frequencyFactors?.[pair] ?? 1);
          table[(row * pairs + pair) * 2] = Math.cos(angle);
          table[(row * pairs + pair) * 2 + 1] = Math.sin(angle);
        }
      }
      const grid = elementGrid(count);
      params.set([
        rows,
        numHeads,
        headDim,
        grid[0],
        style === 'interleaved' ? 2 : 1,
        style === 'interleaved' ? 1 : pairs,
      ]);
      submit('rope', context.pipeline('op-rope', ropeShader), params, [
        { buffers: [[1, tensor.buffer]], grid },
      ]);
    },

    swiglu(gate, up, out) {
      context.assertUsable();
      elementwise('swiglu', gate, up, out);
    },

    add(a, b, out) {
      context.assertUsable();
      elementwise('add', a, b, out);
    },

    softmax(x, out, temperature = 1) {
      context.assertUsable();
      rowSoftmax('softmax', x, out, temperature);
    },

    logSoftmax(x, out) {
      context.assertUsable();
      rowSoftmax('log-softmax', x, out, 1);
    },

    gatherRows(x, rows, out) {
      context.assertUsable();
      const source = tensorOf('x', x);
      tensorOf('out', out);
      const view = matrixOf(x, 'x');
      const outView = matrixOf(out, 'out');
      requireF32(x, 'x');
      requireF32(out, 'out');
      requireEqual('out', 'rows', rows.length, outView.rows, out);
      requireEqual('out', 'row width', view.columns, outView.columns, out);
      requireDistinct(x, out, 'x', 'out');
      requireIndices('rows', rows, view.rows);
      gather('gatherRows', { buffer: source.buffer, format: x.dtype }, rows, out, view.columns);
    },

    async argmax(x) {
      const { data, rows, columns } = await readRows(x);
      return argmaxHost(data, rows, columns);
    },

    async topK(x, k): Promise<TopKResult> {
      const view = matrixOf(x, 'x');
      checkTopK(k, view.columns);
      const { data, rows, columns } = await readRows(x);
      return topKHost(data, rows, columns, k);
    },

    copyKVSlots(storage, source, target) {
      context.assertUsable();
      const kv = context.storage('storage', storage);
      const { numLayers, numKvHeads, headDim, dtype } = kv.descriptor;
      const numSlots = kv.numSlots;
      checkSlotCopy(source, target, numSlots);
      const count = source.length;
      if (count === 0) return;
      const wordsPerSlot = (numKvHeads * headDim * (dtype === 'f16' ? 2 : 4)) / 4;
      const grid = elementGrid(count * wordsPerSlot);
      const params = new Uint32Array(COPY_SLOTS_OFFSET + 2 * count);
      params.set([count, wordsPerSlot, grid[0]]);
      params.set(source, COPY_SLOTS_OFFSET);
      params.set(target, COPY_SLOTS_OFFSET + count);
      const dispatches: Dispatch[] = [];
      for (let layer = 0; layer < numLayers; layer++) {
        dispatches.push(
          { buffers: [[1, kv.keys[layer]!]], grid },
          { buffers: [[1, kv.values[layer]!]], grid },
        );
      }
      submit('copyKVSlots', context.pipeline('op-copy-kv-slots', copyKvSlotsShader), params, dispatches);
    },
  };
}
