import type { KVStorage, PreparedPlan } from '@deft/core';

/**
 * One forward pass: `tokens.length` new tokens, each written to the KV cache and attending through a
 * tree-attention plan. Prefill of a prompt, a new branch, one token per live leaf and a whole speculative
 * token tree are all batches; causality comes from the plan (a query sees its ancestors and the tokens
 * of its own node up to itself).
 */
export interface ForwardBatch {
  /** `[M]` token ids. */
  readonly tokens: Int32Array;
  /** `[M]` absolute position of each token in its sequence (its depth in the tree), for RoPE. */
  readonly positions: Int32Array;
  /** `[M]` KV slot each token's K and V are written to (`page · pageSize + offset`), distinct. */
  readonly slots: Int32Array;
  /** The KV store (created by {@link LlamaModel.createKVStorage} or matching its shape). */
  readonly storage: KVStorage;
  /** The step's plan, prepared on the same backend; query `i` is row `i` of the batch (`numQueries = M`). */
  readonly plan: PreparedPlan;
  /** `[R]` rows whose logits are wanted (all rows when omitted), e.g. only the last prompt token. */
  readonly outputRows?: Int32Array;
  /** `'logits'` (default) or natural-log `'log-probabilities'` (log-softmax on the backend). */
  readonly output?: 'logits' | 'log-probabilities';
}

/** What a forward pass returns. */
export interface ForwardResult {
  /** `[R, vocabSize]` logits (or log-probabilities) of the requested rows, in their order. */
  readonly logits: Float32Array;
  /** `R`. */
  readonly rows: number;
}
