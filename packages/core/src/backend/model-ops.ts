import type { BlockQuantization } from '../tensor/block-quantization.js';
import type { DeviceTensor } from '../tensor/tensor.js';
import type { Backend } from './backend.js';
import type { KVStorage } from './kv-storage.js';

/**
 * How RoPE pairs the dimensions of a head.
 * - `interleaved`: pairs `(2i, 2i + 1)`, as Meta's Llama, llama2.c and llama.cpp's `llama` architecture do;
 * - `half`: pairs `(i, i + headDim / 2)` ("rotate half", GPT-NeoX and Hugging Face checkpoints).
 */
export type RopeStyle = 'interleaved' | 'half';

/** Options of {@link ModelOps.rope}. */
export interface RopeOptions {
  /** Base of the rotation frequencies: pair `i` of a head rotates by `position · theta^(−2i / headDim)`. */
  readonly theta: number;
  /** Which dimensions form a rotating pair; `interleaved` when omitted. */
  readonly style?: RopeStyle;
  /**
   * `[headDim / 2]` divisor of each pair's frequency: pair `i` rotates by
   * `position · theta^(−2i / headDim) / frequencyFactors[i]` (GGUF `rope_freqs`, Llama 3.1 frequency
   * scaling; a constant factor `f` is linear position scaling by `1 / f`). All ones when omitted.
   */
  readonly frequencyFactors?: Float32Array;
}

/** Result of {@link ModelOps.topK}: the `k` largest values of each row, largest first. */
export interface TopKResult {
  /** `[rows, k]` column index of each value (ties: the smaller index first). */
  readonly indices: Int32Array;
  /** `[rows, k]` the values, descending. */
  readonly values: Float32Array;
}

/**
 * The model ops of the backend contract: what a Llama-family forward pass needs besides tree attention.
 *
 * Conventions shared by every op:
 * - Tensors are dense and row-major. An op that reads a *matrix* `[M, K]` accepts any tensor whose first
 *   dimension is `M` and whose remaining dimensions multiply to `K` (a `[M, numHeads, headDim]` tensor is
 *   the matrix `[M, numHeads · headDim]`), so projections write straight into per-head layouts.
 * - Activations and outputs are f32. Weights (`matmul`'s `weight`, `embedding`'s table, `rmsNorm`'s
 *   weight) may be f32 or f16 where the backend supports it; they are read as f32.
 * - Calls enqueue work in order, like the rest of {@link Backend}; the `Promise`-returning ops resolve
 *   once the result is on the host. Every op validates its arguments before it writes anything and
 *   throws `InvalidArgumentError` for a wrong shape, dtype or foreign tensor and `DisposedError` for a
 *   disposed one.
 * - `out` may be the same tensor as an input only where the op says so.
 */
export interface ModelOps {
  /**
   * Optional: the block quantizations this backend keeps weights in, dequantizing inside `matmul` and
   * `embedding` (never expanding a weight in memory). Absent or empty: weights are f32 / f16 only.
   */
  readonly quantizations?: readonly BlockQuantization[];

  /**
   * Optional, present when `quantizations` is not empty: a weight `[rows, columns]` holding `blocks` as
   * a GGUF file stores them (`rows` runs of `columns / blockValues` blocks). The result has `dtype` `f32`
   * and `quantization` set; it can only be `matmul`'s `weight` or `embedding`'s `table`. The backend may
   * keep `blocks` itself instead of copying them (a host backend does): do not modify them afterwards.
   * @throws InvalidArgumentError for a quantization not listed, `columns` not a whole number of blocks,
   *   or `blocks` of the wrong size.
   */
  createQuantizedWeight?(
    shape: readonly [number, number],
    quantization: BlockQuantization,
    blocks: Uint8Array,
  ): DeviceTensor;

  /**
   * Row lookup: `out[i, :] = table[tokens[i], :]`.
   * @param table `[vocabSize, dim]` (f32, f16 or quantized where the backend holds quantized weights)
   * @param tokens `[rows]` ids, each `0 <= id < vocabSize`
   * @param out `[rows, dim]` f32
   * @throws InvalidArgumentError for an id out of range or mismatched shapes.
   */
  embedding(table: DeviceTensor, tokens: Int32Array, out: DeviceTensor): void;

  /**
   * `out = x · weightᵀ`, accumulating each dot product at least in f32.
   * @param x `[M, K]` f32
   * @param weight `[N, K]` (the layout of a PyTorch `Linear` weight and of GGUF tensors); f32, f16, or
   *   quantized where the backend holds quantized weights
   * @param out `[M, N]` f32, not aliasing `x`
   */
  matmul(x: DeviceTensor, weight: DeviceTensor, out: DeviceTensor): void;

  /**
   * Optional: several matmuls of one input, `outs[i] = x · weights[i]ᵀ`, each as {@link ModelOps.matmul}
   * takes it; the same results as calling `matmul` for each. A backend that has it reads `x` once and
   * runs the group as one launch where it can (a layer's q / k / v and gate / up projections).
   * @param weights `[N_i, K]` each
   * @param outs `[M, N_i]` f32 each, as many as `weights`, none given twice and none aliasing `x`
   * @throws InvalidArgumentError as `matmul` does for any member, before any of them runs.
   */
  matmulGroup?(x: DeviceTensor, weights: readonly DeviceTensor[], outs: readonly DeviceTensor[]): void;

  /**
   * RMSNorm of each row: `out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + epsilon) · weight`. A weight
   * narrower than the row, `[G]` with `G` dividing `D`, normalises each `G`-wide group of a row on its
   * own (per-head Q/K norms: `x` `[M, numHeads, headDim]`, weight `[headDim]`).
   * @param x `[M, D]` f32
   * @param weight `[D]`, or `[G]` with `D % G === 0`
   * @param out `[M, D]` f32; may be `x`
   */
  rmsNorm(x: DeviceTensor, weight: DeviceTensor, out: DeviceTensor, epsilon: number): void;

  /**
   * Optional: a residual add and the RMSNorm after it in one pass: `x = x + residual` (written to `x`),
   * then `out = rmsNorm(x)` as {@link ModelOps.rmsNorm} computes it; the same results as `add(x,
   * residual, x)` followed by `rmsNorm(x, weight, out, epsilon)`.
   * @param x `[M, D]` f32, updated in place
   * @param residual f32 of `x`'s size, not `x`
   * @param weight `[D]`, or `[G]` with `D % G === 0`
   * @param out f32 of `x`'s size, neither `x` nor `residual`
   */
  addRmsNorm?(
    x: DeviceTensor,
    residual: DeviceTensor,
    weight: DeviceTensor,
    out: DeviceTensor,
    epsilon: number,
  ): void;

  /**
   * Rotary position embedding, in place: every head of row `i` is rotated for position `positions[i]`.
   * @param x `[M, numHeads, headDim]` f32 (`headDim` even)
   * @param positions `[M]` absolute positions (`>= 0`) of the rows' tokens
   */
  rope(x: DeviceTensor, positions: Int32Array, options: RopeOptions): void;

  /**
   * The SwiGLU gate: `out = silu(gate) · up` elementwise, `silu(g) = g / (1 + e^(−g))`.
   * @param gate `[M, H]` f32
   * @param up `[M, H]` f32
   * @param out `[M, H]` f32; may be `gate` or `up`
   */
  swiglu(gate: DeviceTensor, up: DeviceTensor, out: DeviceTensor): void;

  /** Elementwise `out = a + b` over tensors of equal size (f32); `out` may be `a` or `b`. */
  add(a: DeviceTensor, b: DeviceTensor, out: DeviceTensor): void;

  /**
   * Softmax of each row of `x / temperature`.
   * @param x `[M, N]` f32
   * @param out `[M, N]` f32; may be `x`
   * @param temperature `> 0`, 1 when omitted
   */
  softmax(x: DeviceTensor, out: DeviceTensor, temperature?: number): void;

  /**
   * Log-softmax (natural log) of each row: `out[i, j] = x[i, j] − log Σ_j e^(x[i, j])`.
   * @param x `[M, N]` f32
   * @param out `[M, N]` f32; may be `x`
   */
  logSoftmax(x: DeviceTensor, out: DeviceTensor): void;

  /**
   * Copies rows: `out[r, :] = x[rows[r], :]`.
   * @param x `[M, N]` f32
   * @param rows `[R]` row indices, each `0 <= row < M`
   * @param out `[R, N]` f32, not aliasing `x`
   */
  gatherRows(x: DeviceTensor, rows: Int32Array, out: DeviceTensor): void;

  /**
   * Column of the largest value of each row (ties: the smaller column; NaN never wins).
   * @param x `[M, N]` f32
   * @returns `[M]`
   */
  argmax(x: DeviceTensor): Promise<Int32Array>;

  /**
   * The `k` largest values of each row, largest first (ties: the smaller column first).
   * @param x `[M, N]` f32
   * @param k `1 <= k <= N`
   */
  topK(x: DeviceTensor, k: number): Promise<TopKResult>;

  /**
   * Copies the K and V of slot `source[i]` to slot `target[i]` in every layer of a KV store (the token
   * moves of a speculative commit into partly filled pages). Sources and targets must be disjoint and
   * targets distinct, so the copies may run in any order.
   * @param source `[count]` slots to read
   * @param target `[count]` slots to write
   * @throws InvalidArgumentError for a slot outside the storage, different lengths, a repeated target or
   *   a slot that is both a source and a target.
   */
  copyKVSlots(storage: KVStorage, source: Int32Array, target: Int32Array): void;

  /**
   * Optional: fills an f32 or f16 tensor with seeded uniform values in `[low, high)`, generated on the
   * device (benchmark weights made where they live, without host memory or an upload). The same seed
   * gives the same values for a tensor of the same size on the same backend.
   * @throws InvalidArgumentError for a quantized tensor, a seed that is not a non-negative integer or
   *   `high <= low`.
   */
  fillUniform?(tensor: DeviceTensor, seed: number, low: number, high: number): void;
}

/**
 * A backend that also runs the model ops: what `@deft/model` needs. The ops work on the backend's own
 * tensors (created by `createTensor`), and tree attention's `q` / `out` are ordinary tensors of it.
 *
 * @example
 * ```ts
 * const backend: ModelBackend = createCpuBackend();
 * const x = backend.createTensor({ shape: [2, 64], dtype: 'f32' });
 * backend.ops.rmsNorm(x, normWeight, x, 1e-5);
 * ```
 */
export type ModelBackend = Backend & { readonly ops: ModelOps };

/** True if `backend` carries the model ops ({@link ModelBackend}). */
export function isModelBackend(backend: Backend): backend is ModelBackend {
  const ops = (backend as Partial<ModelBackend>).ops;
  return typeof ops === 'object' && ops !== null && typeof ops.matmul === 'function';
}
