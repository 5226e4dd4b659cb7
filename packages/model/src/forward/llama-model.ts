import {
  type AttentionShape,
  type DeviceTensor,
  DisposedError,
  type DType,
  InvalidArgumentError,
  isBlockQuantization,
  isModelBackend,
  type KVStorage,
  type ModelBackend,
} from '@deft/core';
import { type LlamaConfig, validateLlamaConfig } from '../config/llama-config.js';
import { decodeHostWeight, type HostWeight, isEncodedWeight } from '../weights/host-weight.js';
import { type LlamaCheckpoint, validateLlamaWeights } from '../weights/llama-weights.js';
import type { ForwardBatch, ForwardResult } from './forward-batch.js';

/** Options of {@link LlamaModel.create}. */
export interface LlamaModelOptions {
  /**
   * Element type of the weight matrices on the device. When omitted each keeps its host type: f32 stays
   * f32, f16 stays f16, bf16 becomes f32, and quantized weights stay quantized where the backend holds
   * that quantization (`ops.quantizations`, dequantized inside matmul) and become f16 elsewhere, one
   * tensor at a time. `f16` halves f32 weights' memory; either value dequantizes quantized weights.
   */
  readonly weightDtype?: DType;
}

/** Options of {@link LlamaModel.createRandom}. */
export interface RandomLlamaOptions {
  /** Seed of every weight (default 0); tensor `i` of the model uses stream `seed · 4096 + i`. */
  readonly seed?: number;
  /** Element type of the weight matrices and the embedding (default `f16`). */
  readonly weightDtype?: DType;
}

/** A forward pass whose logits stay on the device ({@link LlamaModel.enqueueForward}). */
export interface DeviceForward {
  /** `[R, vocabSize]` f32 logits (or log-probabilities) of the requested rows. */
  readonly logits: DeviceTensor;
  /** `R`. */
  readonly rows: number;
  /** Frees the logits and the pass's other temporaries (idempotent). */
  dispose(): void;
}

/** Options of {@link LlamaModel.createKVStorage}. */
export interface ModelKVStorageOptions {
  readonly numPages: number;
  /** Tokens per page (16 by default). */
  readonly pageSize?: number;
  /** KV element type (`f32` default). */
  readonly dtype?: DType;
}

interface LayerTensors {
  readonly attentionNorm: DeviceTensor;
  readonly query: DeviceTensor;
  readonly key: DeviceTensor;
  readonly value: DeviceTensor;
  readonly attentionOutput: DeviceTensor;
  readonly ffnNorm: DeviceTensor;
  readonly ffnGate: DeviceTensor;
  readonly ffnDown: DeviceTensor;
  readonly ffnUp: DeviceTensor;
  /** `[1, numHeads · headDim]` etc.: biases as one-row tables, added to every row through `embedding`. */
  readonly queryBias?: DeviceTensor | undefined;
  readonly keyBias?: DeviceTensor | undefined;
  readonly valueBias?: DeviceTensor | undefined;
  /** `[headDim]` per-head RMSNorm weights of Q and K. */
  readonly queryNorm?: DeviceTensor | undefined;
  readonly keyNorm?: DeviceTensor | undefined;
}

type MatrixName = 'query' | 'key' | 'value' | 'attentionOutput' | 'ffnGate' | 'ffnDown' | 'ffnUp';
type NormName = 'attentionNorm' | 'ffnNorm';
type OptionalName = 'queryBias' | 'keyBias' | 'valueBias' | 'queryNorm' | 'keyNorm';

/** Makes each tensor of a model (layer -1: the final norm). */
interface TensorMaker {
  matrix(name: 'tokenEmbedding' | 'output', shape: number[]): DeviceTensor;
  layerMatrix(layer: number, name: MatrixName, shape: number[]): DeviceTensor;
  norm(layer: number, name: NormName, shape: number[]): DeviceTensor;
  optional(layer: number, name: OptionalName, shape: number[]): DeviceTensor | undefined;
}

function requireModelBackend(backend: ModelBackend): void {
  if (isModelBackend(backend)) return;
  const name = (backend as { name?: unknown } | null)?.name;
  throw new InvalidArgumentError(
    `backend ${String(name)} has no model ops; use a backend that implements ModelBackend`,
    { argument: 'backend', expected: 'ModelBackend (with ops)', actual: name },
  );
}

function checkWeightDtype(weightDtype: DType): void {
  if (weightDtype !== 'f32' && weightDtype !== 'f16') {
    throw new InvalidArgumentError("weightDtype must be 'f32' or 'f16'", {
      argument: 'options.weightDtype',
      expected: "'f32' | 'f16'",
      actual: weightDtype,
    });
  }
}

/**
 * Seeded uniform values in `[low, high)`: on the device where the backend has `fillUniform`, else a
 * host generator (SplitMix32 over the stream) uploaded once.
 */
function fillUniform(
  backend: ModelBackend,
  tensor: DeviceTensor,
  stream: number,
  low: number,
  high: number,
): void {
  if (backend.ops.fillUniform !== undefined) {
    backend.ops.fillUniform(tensor, stream, low, high);
    return;
  }
  const values = new Float32Array(tensor.shape.reduce((product, size) => product * size, 1));
  let state = (Math.imul(stream >>> 0, 0x9e3779b9) ^ Math.floor(stream / 2 ** 32)) >>> 0;
  for (let index = 0; index < values.length; index++) {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    values[index] = low + ((high - low) * z) / 2 ** 32;
  }
  backend.uploadTensor(tensor, values);
}

function requireInt32Array(argument: string, value: unknown, length?: number): Int32Array {
  if (!(value instanceof Int32Array) || (length !== undefined && value.length !== length)) {
    throw new InvalidArgumentError(
      `${argument} must be an Int32Array${length === undefined ? '' : ` of length ${length}`}`,
      {
        argument,
        expected: length === undefined ? 'Int32Array' : `Int32Array[${length}]`,
        actual: value instanceof Int32Array ? value.length : typeof value,
      },
    );
  }
  return value;
}

/**
 * A Llama-family decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU, tied or separate output head)
 * running on any {@link ModelBackend}. Attention goes through the paged KV cache and a tree-attention
 * plan, so one {@link LlamaModel.forward} serves many queries at once: every live leaf, a whole
 * speculative token tree, or the causal prefill of a prompt or a new branch.
 *
 * Owns its weight tensors: `dispose()` frees them (idempotent); use after dispose throws `DisposedError`.
 *
 * @example
 * ```ts
 * const model = LlamaModel.create(createCpuBackend(), await loadLlama2cCheckpoint('stories260K.bin'));
 * const storage = model.createKVStorage({ numPages: 64 });
 * const { logits } = await model.forward({ tokens, positions, slots, storage, plan: backend.preparePlan(plan) });
 * ```
 */
export class LlamaModel {
  readonly config: LlamaConfig;
  readonly backend: ModelBackend;
  private readonly tokenEmbedding: DeviceTensor;
  private readonly finalNorm: DeviceTensor;
  private readonly output: DeviceTensor;
  private readonly layers: readonly LayerTensors[];
  private readonly owned: DeviceTensor[];
  private isDisposed = false;

  private constructor(
    backend: ModelBackend,
    config: LlamaConfig,
    tensors: {
      tokenEmbedding: DeviceTensor;
      finalNorm: DeviceTensor;
      output: DeviceTensor;
      layers: LayerTensors[];
      owned: DeviceTensor[];
    },
  ) {
    this.backend = backend;
    this.config = config;
    this.tokenEmbedding = tensors.tokenEmbedding;
    this.finalNorm = tensors.finalNorm;
    this.output = tensors.output;
    this.layers = tensors.layers;
    this.owned = tensors.owned;
  }

  /**
   * Uploads a checkpoint's weights to the backend.
   *
   * @throws InvalidArgumentError for an inconsistent config or weights, or a backend without model ops.
   * @example
   * ```ts
   * const model = LlamaModel.create(backend, checkpoint, { weightDtype: 'f16' });
   * ```
   */
  static create(
    backend: ModelBackend,
    checkpoint: LlamaCheckpoint,
    options: LlamaModelOptions = {},
  ): LlamaModel {
    requireModelBackend(backend);
    const { config, weights } = checkpoint;
    validateLlamaConfig(config);
    validateLlamaWeights(config, weights);
    const weightDtype = options.weightDtype;
    if (weightDtype !== undefined) checkWeightDtype(weightDtype);
    const owned: DeviceTensor[] = [];
    // Host type of a matrix when no weightDtype is asked for: f16 stays f16, f32 and bf16 become f32,
    // quantized weights f16 (one tensor is decoded at a time, never the whole model).
    const deviceDtype = (data: HostWeight): DType =>
      weightDtype ?? (isEncodedWeight(data) && data.encoding !== 'bf16' ? 'f16' : 'f32');
    const quantizations = backend.ops.quantizations ?? [];
    const upload = (data: HostWeight, shape: number[], dtype?: DType): DeviceTensor => {
      // A backend that holds this quantization keeps the blocks as they are (dequantized inside matmul).
      if (
        dtype === undefined &&
        weightDtype === undefined &&
        isEncodedWeight(data) &&
        isBlockQuantization(data.encoding) &&
        quantizations.includes(data.encoding) &&
        backend.ops.createQuantizedWeight !== undefined &&
        shape.length === 2
      ) {
        const tensor = backend.ops.createQuantizedWeight([shape[0]!, shape[1]!], data.encoding, data.bytes);
        owned.push(tensor);
        return tensor;
      }
      const tensor = backend.createTensor({ shape, dtype: dtype ?? deviceDtype(data) });
      owned.push(tensor);
      backend.uploadTensor(tensor, decodeHostWeight(data));
      return tensor;
    };
    const uploadOptional = (data: Float32Array | undefined, shape: number[]): DeviceTensor | undefined =>
      data === undefined ? undefined : upload(data, shape, 'f32');
    return LlamaModel.build(backend, config, owned, {
      matrix: (name, shape) =>
        upload(name === 'tokenEmbedding' ? weights.tokenEmbedding : (weights.output as HostWeight), shape),
      layerMatrix: (layer, name, shape) => upload(weights.layers[layer]![name], shape),
      norm: (layer, name, shape) =>
        upload(layer < 0 ? weights.finalNorm : weights.layers[layer]![name]!, shape, 'f32'),
      optional: (layer, name, shape) => uploadOptional(weights.layers[layer]![name], shape),
    });
  }

  /**
   * A model of `config`'s shape with seeded random weights made on the backend: matrices uniform in
   * `±1 / sqrt(in)`, norms 1, biases uniform in `±0.02`, an untied output head unless the config ties
   * it. With `ops.fillUniform` the values are generated on the device (no host copy of the weights:
   * an 8B-shaped model fits where its weights do); otherwise they are generated on the host one tensor
   * at a time and uploaded. For benchmarks and tests of shapes no file is at hand for.
   *
   * @throws InvalidArgumentError for an inconsistent config or a backend without model ops.
   * @example
   * ```ts
   * const model = LlamaModel.createRandom(backend, llama3Config, { seed: 1, weightDtype: 'f16' });
   * ```
   */
  static createRandom(
    backend: ModelBackend,
    config: LlamaConfig,
    options: RandomLlamaOptions = {},
  ): LlamaModel {
    requireModelBackend(backend);
    validateLlamaConfig(config);
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0 || seed >= 2 ** 36) {
      throw new InvalidArgumentError('options.seed must be an integer in [0, 2^36)', {
        argument: 'options.seed',
        expected: 'integer in [0, 2^36)',
        actual: seed,
      });
    }
    const weightDtype = options.weightDtype ?? 'f16';
    checkWeightDtype(weightDtype);
    const owned: DeviceTensor[] = [];
    let stream = 0;
    const random = (shape: number[], dtype: DType, bound: number): DeviceTensor => {
      const tensor = backend.createTensor({ shape, dtype });
      owned.push(tensor);
      fillUniform(backend, tensor, seed * 4096 + stream++, -bound, bound);
      return tensor;
    };
    const ones = (shape: number[]): DeviceTensor => {
      const tensor = backend.createTensor({ shape, dtype: 'f32' });
      owned.push(tensor);
      backend.uploadTensor(tensor, new Float32Array(shape[0]!).fill(1));
      return tensor;
    };
    const matrix = (shape: number[]) => random(shape, weightDtype, 1 / Math.sqrt(shape[1]!));
    return LlamaModel.build(backend, config, owned, {
      matrix: (_name, shape) => matrix(shape),
      layerMatrix: (_layer, _name, shape) => matrix(shape),
      norm: (_layer, _name, shape) => ones(shape),
      optional: (_layer, name, shape) => {
        if (name === 'queryNorm' || name === 'keyNorm')
          return config.queryKeyNorm === true ? ones(shape) : undefined;
        return config.attentionBias === true ? random(shape, 'f32', 0.02) : undefined;
      },
    });
  }

  /** Creates every tensor through `make` (freeing what was made if one fails) and wraps them. */
  private static build(
    backend: ModelBackend,
    config: LlamaConfig,
    owned: DeviceTensor[],
    make: TensorMaker,
  ): LlamaModel {
    try {
      const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize } = config;
      const tokenEmbedding = make.matrix('tokenEmbedding', [vocabSize, dim]);
      const layers = Array.from({ length: config.numLayers }, (_, index) => ({
        attentionNorm: make.norm(index, 'attentionNorm', [dim]),
        query: make.layerMatrix(index, 'query', [numHeads * headDim, dim]),
        key: make.layerMatrix(index, 'key', [numKvHeads * headDim, dim]),
        value: make.layerMatrix(index, 'value', [numKvHeads * headDim, dim]),
        attentionOutput: make.layerMatrix(index, 'attentionOutput', [dim, numHeads * headDim]),
        ffnNorm: make.norm(index, 'ffnNorm', [dim]),
        ffnGate: make.layerMatrix(index, 'ffnGate', [hiddenDim, dim]),
        ffnDown: make.layerMatrix(index, 'ffnDown', [dim, hiddenDim]),
        ffnUp: make.layerMatrix(index, 'ffnUp', [hiddenDim, dim]),
        queryBias: make.optional(index, 'queryBias', [1, numHeads * headDim]),
        keyBias: make.optional(index, 'keyBias', [1, numKvHeads * headDim]),
        valueBias: make.optional(index, 'valueBias', [1, numKvHeads * headDim]),
        queryNorm: make.optional(index, 'queryNorm', [headDim]),
        keyNorm: make.optional(index, 'keyNorm', [headDim]),
      }));
      const finalNorm = make.norm(-1, 'attentionNorm', [dim]);
      const output = config.tiedEmbeddings ? tokenEmbedding : make.matrix('output', [vocabSize, dim]);
      return new LlamaModel(backend, config, { tokenEmbedding, finalNorm, output, layers, owned });
    } catch (error) {
      for (const tensor of owned) tensor.dispose();
      throw error;
    }
  }

  /** True once {@link LlamaModel.dispose} ran. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * The attention shape to plan with for a KV dtype.
   * @example
   * ```ts
   * planTreeAttention(view, queries, { shape: model.attentionShape('f32') });
   * ```
   */
  attentionShape(kvDtype: DType = 'f32'): AttentionShape {
    const { numHeads, numKvHeads, headDim } = this.config;
    return { numHeads, numKvHeads, headDim, kvDtype };
  }

  /**
   * Allocates a paged KV store shaped for this model on its backend (`numLayers` layers,
   * `[numPages, pageSize, numKvHeads, headDim]` each for K and V).
   * @example
   * ```ts
   * const storage = model.createKVStorage({ numPages: 256, pageSize: 16, dtype: 'f16' });
   * ```
   */
  createKVStorage(options: ModelKVStorageOptions): KVStorage {
    this.requireLive();
    return this.backend.createKVStorage({
      numLayers: this.config.numLayers,
      numPages: options.numPages,
      pageSize: options.pageSize ?? 16,
      numKvHeads: this.config.numKvHeads,
      headDim: this.config.headDim,
      dtype: options.dtype ?? 'f32',
    });
  }

  /**
   * Runs the model over a batch of new tokens: writes their K and V into `storage` at `slots` (every
   * layer) and returns the logits of the requested rows. Everything is validated before the KV cache is
   * written.
   *
   * @throws InvalidArgumentError for mismatched lengths, an id out of the vocabulary, a negative position,
   *   a slot outside the storage, a plan whose query count is not the batch size, or a storage of another
   *   shape; DisposedError after dispose.
   * @example
   * ```ts
   * const { logits } = await model.forward({ tokens, positions, slots, storage, plan, outputRows: new Int32Array([tokens.length - 1]) });
   * ```
   */
  async forward(batch: ForwardBatch): Promise<ForwardResult> {
    const pass = this.enqueueForward(batch);
    try {
      return { logits: await this.backend.downloadTensor(pass.logits), rows: pass.rows };
    } finally {
      pass.dispose();
    }
  }

  /**
   * {@link LlamaModel.forward} without the download: enqueues the pass and returns its logits as a
   * device tensor, for a caller that chooses tokens on the device (`ops.argmax`, `ops.topK`) so only
   * the picks cross to the host. Call `dispose()` on the result once done with the logits.
   *
   * @throws the same errors as {@link LlamaModel.forward}, before anything is enqueued.
   * @example
   * ```ts
   * const pass = model.enqueueForward(batch);
   * const next = await backend.ops.argmax(pass.logits);
   * pass.dispose();
   * ```
   */
  enqueueForward(batch: ForwardBatch): DeviceForward {
    this.requireLive();
    const rows = this.validateBatch(batch);
    const { backend, config } = this;
    const { ops } = backend;
    const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize } = config;
    const count = batch.tokens.length;
    const temporaries: DeviceTensor[] = [];
    const tensor = (shape: number[]): DeviceTensor => {
      const created = backend.createTensor({ shape, dtype: 'f32' });
      temporaries.push(created);
      return created;
    };
    try {
      const hidden = tensor([count, dim]);
      const normed = tensor([count, dim]);
      const query = tensor([count, numHeads, headDim]);
      const key = tensor([count, numKvHeads, headDim]);
      const value = tensor([count, numKvHeads, headDim]);
      const attention = tensor([count, numHeads, headDim]);
      const projected = tensor([count, dim]);
      const gate = tensor([count, hiddenDim]);
      const up = tensor([count, hiddenDim]);
      const scale = 1 / Math.sqrt(headDim);
      const rope = {
        theta: config.ropeTheta,
        style: config.ropeStyle,
        ...(config.ropeFrequencyFactors === undefined
          ? {}
          : { frequencyFactors: config.ropeFrequencyFactors }),
      };
      // A bias is a one-row table: `embedding` with row 0 for every token broadcasts it, then `add`.
      const firstRow = new Int32Array(count);
      const biasRows =
        config.attentionBias === true
          ? { query: tensor([count, numHeads * headDim]), kv: tensor([count, numKvHeads * headDim]) }
          : undefined;
      const addBias = (bias: DeviceTensor | undefined, rows: DeviceTensor | undefined, x: DeviceTensor) => {
        if (bias === undefined || rows === undefined) return;
        ops.embedding(bias, firstRow, rows);
        ops.add(x, rows, x);
      };
      // Where the backend has them: one launch for a layer's q / k / v (and gate / up) projections, and
      // each residual add fused with the RMSNorm that reads the sum.
      const project = (x: DeviceTensor, weights: DeviceTensor[], outs: DeviceTensor[]) => {
        if (ops.matmulGroup !== undefined) ops.matmulGroup(x, weights, outs);
        else for (const [index, weight] of weights.entries()) ops.matmul(x, weight, outs[index]!);
      };
      const addThenNorm = (residual: DeviceTensor, weight: DeviceTensor, out: DeviceTensor) => {
        if (ops.addRmsNorm !== undefined) {
          ops.addRmsNorm(hidden, residual, weight, out, config.normEpsilon);
        } else {
          ops.add(hidden, residual, hidden);
          ops.rmsNorm(hidden, weight, out, config.normEpsilon);
        }
      };
      ops.embedding(this.tokenEmbedding, batch.tokens, hidden);
      // The FFN output of the previous layer, added to `hidden` by the next norm.
      let pending: DeviceTensor | undefined;
      this.layers.forEach((layer, index) => {
        if (pending === undefined) ops.rmsNorm(hidden, layer.attentionNorm, normed, config.normEpsilon);
        else addThenNorm(pending, layer.attentionNorm, normed);
        project(normed, [layer.query, layer.key, layer.value], [query, key, value]);
        addBias(layer.queryBias, biasRows?.query, query);
        addBias(layer.keyBias, biasRows?.kv, key);
        addBias(layer.valueBias, biasRows?.kv, value);
        // Qwen 3: each head of Q and K is RMS-normalised before RoPE (a weight of one head's width).
        if (layer.queryNorm !== undefined) ops.rmsNorm(query, layer.queryNorm, query, config.normEpsilon);
        if (layer.keyNorm !== undefined) ops.rmsNorm(key, layer.keyNorm, key, config.normEpsilon);
        ops.rope(query, batch.positions, rope);
        ops.rope(key, batch.positions, rope);
        backend.writeKV(batch.storage, index, batch.slots, key, value);
        backend.treeAttention({
          storage: batch.storage,
          layer: index,
          plan: batch.plan,
          q: query,
          out: attention,
          scale,
        });
        ops.matmul(attention, layer.attentionOutput, projected);
        addThenNorm(projected, layer.ffnNorm, normed);
        project(normed, [layer.ffnGate, layer.ffnUp], [gate, up]);
        ops.swiglu(gate, up, gate);
        ops.matmul(gate, layer.ffnDown, projected);
        pending = projected;
      });
      const finalHidden = tensor([rows, dim]);
      if (batch.outputRows !== undefined) {
        if (pending !== undefined) ops.add(hidden, pending, hidden);
        const last = tensor([rows, dim]);
        ops.gatherRows(hidden, batch.outputRows, last);
        ops.rmsNorm(last, this.finalNorm, finalHidden, config.normEpsilon);
      } else if (pending !== undefined) {
        addThenNorm(pending, this.finalNorm, finalHidden);
      } else {
        ops.rmsNorm(hidden, this.finalNorm, finalHidden, config.normEpsilon);
      }
      const logits = tensor([rows, vocabSize]);
      ops.matmul(finalHidden, this.output, logits);
      if (batch.output === 'log-probabilities') ops.logSoftmax(logits, logits);
      let released = false;
      return {
        logits,
        rows,
        dispose: () => {
          if (released) return;
          released = true;
          for (const temporary of temporaries) temporary.dispose();
        },
      };
    } catch (error) {
      for (const temporary of temporaries) temporary.dispose();
      throw error;
    }
  }

  /** Frees the weight tensors (idempotent). */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    for (const tensor of this.owned) tensor.dispose();
  }

  private requireLive(): void {
    if (this.isDisposed) throw new DisposedError('LlamaModel');
  }

  /** Validates a batch; returns the number of output rows. */
  private validateBatch(batch: ForwardBatch): number {
    const tokens = requireInt32Array('batch.tokens', batch.tokens);
    const count = tokens.length;
    if (count === 0) {
      throw new InvalidArgumentError('batch.tokens is empty; a forward pass needs at least one token', {
        argument: 'batch.tokens',
        expected: '>= 1 token',
        actual: 0,
      });
    }
    requireInt32Array('batch.positions', batch.positions, count);
    const slots = requireInt32Array('batch.slots', batch.slots, count);
    const { vocabSize, numLayers, numKvHeads, headDim } = this.config;
    for (let index = 0; index < count; index++) {
      const token = tokens[index]!;
      if (token < 0 || token >= vocabSize) {
        throw new InvalidArgumentError(
          `batch.tokens[${index}] = ${token} is outside the vocabulary [0, ${vocabSize})`,
          {
            argument: `batch.tokens[${index}]`,
            expected: `0 <= id < ${vocabSize}`,
            actual: token,
          },
        );
      }
      if (batch.positions[index]! < 0) {
        throw new InvalidArgumentError(`batch.positions[${index}] must be >= 0`, {
          argument: `batch.positions[${index}]`,
          expected: '>= 0',
          actual: batch.positions[index],
        });
      }
    }
    const descriptor = batch.storage.descriptor;
    if (
      descriptor.numLayers !== numLayers ||
      descriptor.numKvHeads !== numKvHeads ||
      descriptor.headDim !== headDim
    ) {
      throw new InvalidArgumentError(
        `batch.storage is shaped for ${descriptor.numLayers} layers × ${descriptor.numKvHeads} KV heads × ${descriptor.headDim}, the model needs ${numLayers} × ${numKvHeads} × ${headDim}; create it with model.createKVStorage`,
        {
          argument: 'batch.storage',
          expected: { numLayers, numKvHeads, headDim },
          actual: {
            numLayers: descriptor.numLayers,
            numKvHeads: descriptor.numKvHeads,
            headDim: descriptor.headDim,
          },
        },
      );
    }
    const numSlots = descriptor.numPages * descriptor.pageSize;
    for (let index = 0; index < count; index++) {
      const slot = slots[index]!;
      if (slot < 0 || slot >= numSlots) {
        throw new InvalidArgumentError(
          `batch.slots[${index}] = ${slot} is outside the storage's ${numSlots} slots`,
          {
            argument: `batch.slots[${index}]`,
            expected: `0 <= slot < ${numSlots}`,
            actual: slot,
          },
        );
      }
    }
    if (batch.plan.plan.numQueries !== count) {
      throw new InvalidArgumentError(
        `batch.plan has ${batch.plan.plan.numQueries} queries but the batch has ${count} tokens; plan one query per new token, in batch order`,
        {
          argument: 'batch.plan',
          expected: count,
          actual: batch.plan.plan.numQueries,
        },
      );
    }
    if (batch.plan.plan.pageSize !== descriptor.pageSize) {
      throw new InvalidArgumentError(
        `batch.plan was built for page size ${batch.plan.plan.pageSize}, the storage uses ${descriptor.pageSize}`,
        {
          argument: 'batch.plan',
          expected: descriptor.pageSize,
          actual: batch.plan.plan.pageSize,
        },
      );
    }
    if (batch.outputRows === undefined) return count;
    const outputRows = requireInt32Array('batch.outputRows', batch.outputRows);
    if (outputRows.length === 0) {
      throw new InvalidArgumentError('batch.outputRows is empty; omit it for all rows', {
        argument: 'batch.outputRows',
        expected: '>= 1 row',
        actual: 0,
      });
    }
    for (let index = 0; index < outputRows.length; index++) {
      const row = outputRows[index]!;
      if (row < 0 || row >= count) {
        throw new InvalidArgumentError(
          `batch.outputRows[${index}] = ${row} is outside the batch [0, ${count})`,
          {
            argument: `batch.outputRows[${index}]`,
            expected: `0 <= row < ${count}`,
            actual: row,
          },
        );
      }
    }
    return outputRows.length;
  }
}
