import type { DType } from '@deft/core';
import { decodeHostWeight, type LlamaCheckpoint, type LlamaModel } from '@deft/model';
import { planTreeAttention } from '@deft/planner';
import { buildPagedTree } from '../tree/build-paged-tree.js';

/**
 * The logits of every position of one sequence, computed from a checkpoint's host weights in float64
 * by the plainest code that follows the architectures' definitions (Llama, Qwen 2 biases, Qwen 3 per-head
 * Q/K norms, RoPE frequency factors): the oracle the model's forward pass is checked against.
 *
 * @returns `[tokens.length, vocabSize]`
 */
export function referenceLogits(checkpoint: LlamaCheckpoint, tokens: readonly number[]): Float64Array {
  const { config, weights } = checkpoint;
  const { dim, hiddenDim, numHeads, numKvHeads, headDim, vocabSize, normEpsilon } = config;
  const count = tokens.length;
  const decode = (weight: Parameters<typeof decodeHostWeight>[0]) => decodeHostWeight(weight);
  const matvec = (matrix: Float32Array, x: Float64Array, rows: number, columns: number) => {
    const out = new Float64Array(rows);
    for (let row = 0; row < rows; row++) {
      let sum = 0;
      for (let column = 0; column < columns; column++) sum += matrix[row * columns + column]! * x[column]!;
      out[row] = sum;
    }
    return out;
  };
  const rmsNorm = (x: Float64Array, weight: ArrayLike<number>, offset = 0, width = x.length) => {
    let sum = 0;
    for (let index = 0; index < width; index++) sum += x[offset + index]! ** 2;
    const scale = 1 / Math.sqrt(sum / width + normEpsilon);
    for (let index = 0; index < width; index++)
      x[offset + index] = x[offset + index]! * scale * weight[index]!;
  };
  const rope = (x: Float64Array, heads: number, position: number) => {
    const pairs = headDim / 2;
    for (let head = 0; head < heads; head++) {
      for (let pair = 0; pair < pairs; pair++) {
        const factor = config.ropeFrequencyFactors?.[pair] ?? 1;
        const angle = (position * config.ropeTheta ** ((-2 * pair) / headDim)) / factor;
        const first = head * headDim + (config.ropeStyle === 'interleaved' ? 2 * pair : pair);
        const second = first + (config.ropeStyle === 'interleaved' ? 1 : pairs);
        const a = x[first]!;
        const b = x[second]!;
        x[first] = a * Math.cos(angle) - b * Math.sin(angle);
        x[second] = a * Math.sin(angle) + b * Math.cos(angle);
      }
    }
  };
  const embedding = decode(weights.tokenEmbedding);
  const hidden = tokens.map((token) => Float64Array.from(embedding.subarray(token * dim, (token + 1) * dim)));
  for (const layer of weights.layers) {
    const [query, key, value, output, gate, down, up] = [
      layer.query,
      layer.key,
      layer.value,
      layer.attentionOutput,
      layer.ffnGate,
      layer.ffnDown,
      layer.ffnUp,
    ].map(decode) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    const keys: Float64Array[] = [];
    const values: Float64Array[] = [];
    const queries: Float64Array[] = [];
    hidden.forEach((x, position) => {
      const normed = Float64Array.from(x);
      rmsNorm(normed, layer.attentionNorm);
      const q = matvec(query, normed, numHeads * headDim, dim);
      const k = matvec(key, normed, numKvHeads * headDim, dim);
      const v = matvec(value, normed, numKvHeads * headDim, dim);
      const add = (target: Float64Array, bias: Float32Array | undefined) => {
        if (bias !== undefined)
          for (let index = 0; index < target.length; index++) target[index]! += bias[index]!;
      };
      add(q, layer.queryBias);
      add(k, layer.keyBias);
      add(v, layer.valueBias);
      if (layer.queryNorm !== undefined)
        for (let head = 0; head < numHeads; head++) rmsNorm(q, layer.queryNorm, head * headDim, headDim);
      if (layer.keyNorm !== undefined)
        for (let head = 0; head < numKvHeads; head++) rmsNorm(k, layer.keyNorm, head * headDim, headDim);
      rope(q, numHeads, position);
      rope(k, numKvHeads, position);
      queries.push(q);
      keys.push(k);
      values.push(v);
    });
    hidden.forEach((x, position) => {
      const attention = new Float64Array(numHeads * headDim);
      for (let head = 0; head < numHeads; head++) {
        const kvHead = Math.floor(head / (numHeads / numKvHeads));
        const scores = new Float64Array(position + 1);
        let max = Number.NEGATIVE_INFINITY;
        for (let other = 0; other <= position; other++) {
          let dot = 0;
          for (let index = 0; index < headDim; index++)
            dot += queries[position]![head * headDim + index]! * keys[other]![kvHead * headDim + index]!;
          scores[other] = dot / Math.sqrt(headDim);
          max = Math.max(max, scores[other]!);
        }
        let total = 0;
        for (let other = 0; other <= position; other++)
          total += scores[other] = Math.exp(scores[other]! - max);
        for (let other = 0; other <= position; other++)
          for (let index = 0; index < headDim; index++)
            attention[head * headDim + index]! +=
              (scores[other]! / total) * values[other]![kvHead * headDim + index]!;
      }
      const projected = matvec(output, attention, dim, numHeads * headDim);
      for (let index = 0; index < dim; index++) x[index]! += projected[index]!;
      const normed = Float64Array.from(x);
      rmsNorm(normed, layer.ffnNorm);
      const g = matvec(gate, normed, hiddenDim, dim);
      const u = matvec(up, normed, hiddenDim, dim);
      for (let index = 0; index < hiddenDim; index++)
        g[index] = (g[index]! / (1 + Math.exp(-g[index]!))) * u[index]!;
      const d = matvec(down, g, dim, hiddenDim);
      for (let index = 0; index < dim; index++) x[index]! += d[index]!;
    });
  }
  const head = weights.output === undefined ? embedding : decode(weights.output);
  const logits = new Float64Array(count * vocabSize);
  hidden.forEach((x, position) => {
    const normed = Float64Array.from(x);
    rmsNorm(normed, weights.finalNorm);
    logits.set(matvec(head, normed, vocabSize, dim), position * vocabSize);
  });
  return logits;
}

/**
 * Runs a model over one sequence as a causal prefill (one query per token, a one-node tree in 16-token
 * pages) and returns the logits of every position, `[tokens.length, vocabSize]`.
 */
export async function prefillLogits(
  model: LlamaModel,
  tokens: readonly number[],
  kvDtype: DType = 'f32',
): Promise<Float32Array> {
  const pageSize = 16;
  const { view, numPages } = buildPagedTree([{ parent: -1, tokens: tokens.length }], pageSize);
  const queries = {
    nodes: new Int32Array(tokens.length).fill(view.order[0]!),
    positions: Int32Array.from(tokens, (_, index) => index),
  };
  const storage = model.createKVStorage({ numPages, pageSize, dtype: kvDtype });
  const plan = model.backend.preparePlan(
    planTreeAttention(view, queries, { shape: model.attentionShape(kvDtype) }),
    model.attentionShape(kvDtype),
  );
  try {
    const pages = view.pages.subarray(view.pageIndptr[view.order[0]!]!, view.pageIndptr[view.order[0]! + 1]!);
    const slots = Int32Array.from(
      tokens,
      (_, index) => pages[Math.floor(index / pageSize)]! * pageSize + (index % pageSize),
    );
    const { logits } = await model.forward({
      tokens: Int32Array.from(tokens),
      positions: Int32Array.from(tokens, (_, index) => index),
      slots,
      storage,
      plan,
    });
    return logits;
  } finally {
    plan.dispose();
    storage.dispose();
  }
}

/**
 * Greedy decoding of one sequence, one token per forward pass over a growing one-node tree (the prompt
 * as a causal prefill first): the model's own step loop without the decoder. Returns the generated ids
 * and, per step, the log-probabilities of the chosen token and the runner-up (their margin says how safe
 * a comparison with another implementation is).
 */
export async function greedyDecode(
  model: LlamaModel,
  prompt: readonly number[],
  steps: number,
): Promise<{ tokens: number[]; margins: number[]; firstLogits: Float32Array }> {
  const pageSize = 16;
  const total = prompt.length + steps;
  const numPages = Math.ceil(total / pageSize);
  const storage = model.createKVStorage({ numPages, pageSize });
  const vocabSize = model.config.vocabSize;
  const tokens: number[] = [];
  const margins: number[] = [];
  let firstLogits = new Float32Array(0);
  try {
    let input = [...prompt];
    let start = 0;
    while (tokens.length < steps) {
      const length = start + input.length;
      const { view } = buildPagedTree([{ parent: -1, tokens: length }], pageSize);
      const node = view.order[0]!;
      const queries = {
        nodes: new Int32Array(input.length).fill(node),
        positions: Int32Array.from(input, (_, index) => start + index),
      };
      const plan = model.backend.preparePlan(
        planTreeAttention(view, queries, { shape: model.attentionShape('f32') }),
        model.attentionShape('f32'),
      );
      try {
        // Without a seed, buildPagedTree gives the node pages 0, 1, 2, …: slot = position.
        const positions = Int32Array.from(input, (_, index) => start + index);
        const { logits } = await model.forward({
          tokens: Int32Array.from(input),
          positions,
          slots: positions,
          storage,
          plan,
          outputRows: Int32Array.of(input.length - 1),
          output: 'log-probabilities',
        });
        if (tokens.length === 0) firstLogits = logits.slice(0, vocabSize);
        let best = 0;
        for (let index = 1; index < vocabSize; index++) if (logits[index]! > logits[best]!) best = index;
        let second = Number.NEGATIVE_INFINITY;
        for (let index = 0; index < vocabSize; index++)
          if (index !== best) second = Math.max(second, logits[index]!);
        tokens.push(best);
        margins.push(logits[best]! - second);
        start = length;
        input = [best];
      } finally {
        plan.dispose();
      }
    }
    return { tokens, margins, firstLogits };
  } finally {
    storage.dispose();
  }
}
