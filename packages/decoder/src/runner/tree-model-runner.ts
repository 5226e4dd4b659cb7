import {
  type DType,
  InvalidArgumentError,
  InvalidStateError,
  type KVStorage,
  kvBytesPerToken,
  type PlanStrategy,
} from '@deft/core';
import { type PagePool, TreeKVCache } from '@deft/kv-cache';
import type { LlamaModel } from '@deft/model';
import { type PlannerOptions, planTreeAttention } from '@deft/planner';
import type { TokenTree, TreeChange } from '@deft/tree';
import type { StepStats } from './step-stats.js';

/** Options of {@link TreeModelRunner}. */
export interface TreeModelRunnerOptions {
  readonly model: LlamaModel;
  /** The token tree to run; the runner attaches a KV cache to it, so its pages follow every change. */
  readonly tree: TokenTree;
  /** Where KV pages come from (its `pageSize` must be the storage's). */
  readonly pool: PagePool;
  /** The KV bytes, created with `model.createKVStorage` for the pool's pages. */
  readonly storage: KVStorage;
  /**
   * How attention is planned, handed to the planner as is: `strategy` (`deft-flatten` default;
   * `sequence` is the baseline), `chunkSize`, `targetWorkUnits`, `maxPartialRatio`. The attention shape
   * comes from the model.
   */
  readonly planner?: PlannerOptions;
}

/**
 * What a pass does with one node's pending tokens (tokens without KV yet): `'last'` computes them and
 * gives the last one an output row, `'all'` gives every one a row, `'none'` computes them without rows
 * (a shared prompt piece whose logits nobody reads), `'defer'` leaves them for a later pass (a
 * sequence whose owner is not ready for this step). A node below a deferred node with pending tokens
 * must be deferred too.
 */
export type NodeRows = 'last' | 'all' | 'none' | 'defer';

/** Options of {@link TreeModelRunner.evaluate}. */
export interface EvaluateOptions {
  /**
   * Which new tokens get output rows: `'last'` (default) the last new token of every node that has new
   * tokens (one per growing leaf, the prompt's last token after a prefill), `'all'` every new token (a
   * speculative token tree, where each draft token's prediction is checked), or a function choosing per
   * node with pending tokens (see {@link NodeRows}; it may also defer a node to a later pass).
   */
  readonly rows?: 'last' | 'all' | ((node: number) => NodeRows);
  /** `'log-probabilities'` (default, natural log) or raw `'logits'`. */
  readonly output?: 'logits' | 'log-probabilities';
}

/** The result of {@link TreeModelRunner.evaluate}. */
export interface TreeEvaluation {
  /** Number of output rows `R`. */
  readonly rows: number;
  /** `[R]` node of each row. */
  readonly nodes: Int32Array;
  /** `[R]` token position of each row inside its node. */
  readonly positions: Int32Array;
  /** `[R, vocabSize]` log-probabilities (or logits) of the token following each row's token. */
  readonly values: Float32Array;
  readonly vocabSize: number;
  readonly stats: StepStats;
  /**
   * The values row of `(node, position)` (default position: the node's last evaluated token), or
   * `undefined` when the pass produced no such row.
   */
  row(node: number, position?: number): Float32Array | undefined;
}

const NODE_ROWS: readonly NodeRows[] = ['last', 'all', 'none', 'defer'];

/**
 * Runs a {@link LlamaModel} over a growing {@link TokenTree}: the tree's KV lives in pages of a shared
 * pool (a {@link TreeKVCache} attached to the tree, so fork / append / prune / commit keep the pages in
 * step), and {@link TreeModelRunner.evaluate} computes every token that has no KV yet in one forward pass,
 * with one tree-attention plan for all of them. That covers the prefill of a prompt, the prefill of new
 * branches, one new token per live leaf, and a whole speculative token tree. Speculative commits
 * (`tree.commitPath`) keep the KV of accepted tokens: the cache's token moves run on the backend.
 *
 * `dispose()` releases every page the tree holds (the pool is back to where it was) and detaches from the
 * tree (idempotent).
 *
 * @example
 * ```ts
 * const tree = TokenTree.create(tokenizer.encode('Once upon a time'));
 * const runner = new TreeModelRunner({ model, tree, pool, storage });
 * let step = await runner.evaluate();                 // prefill: one row, the prompt's last token
 * tree.append(tree.root, argmax(step.row(tree.root)!));
 * step = await runner.evaluate();                     // one new token
 * runner.dispose();
 * ```
 */
export class TreeModelRunner {
  readonly model: LlamaModel;
  readonly tree: TokenTree;
  readonly pool: PagePool;
  readonly storage: KVStorage;
  readonly cache: TreeKVCache;
  readonly planStrategy: PlanStrategy;
  private readonly plannerOptions: PlannerOptions;
  private readonly kvDtype: DType;
  /** `[idLimit]` how many leading tokens of each node have KV in the storage. */
  private computed = new Int32Array(64);
  private readonly stopListening: () => void;
  private isDisposed = false;

  /**
   * @throws InvalidArgumentError if the storage does not match the model or the pool;
   *   CapacityError if the tree's tokens do not fit in the pool (nothing changed).
   */
  constructor(options: TreeModelRunnerOptions) {
    const { model, tree, pool, storage } = options;
    const descriptor = storage.descriptor;
    const { numLayers, numKvHeads, headDim } = model.config;
    if (
      descriptor.numLayers !== numLayers ||
      descriptor.numKvHeads !== numKvHeads ||
      descriptor.headDim !== headDim
    ) {
      throw new InvalidArgumentError(
        'storage is not shaped for this model; create it with model.createKVStorage',
        {
          argument: 'storage',
          expected: { numLayers, numKvHeads, headDim },
          actual: descriptor,
        },
      );
    }
    this.model = model;
    this.tree = tree;
    this.pool = pool;
    this.storage = storage;
    this.plannerOptions = { ...options.planner };
    this.planStrategy = this.plannerOptions.strategy ?? 'deft-flatten';
    this.kvDtype = descriptor.dtype;
    const backend = model.backend;
    this.cache = new TreeKVCache({
      pool,
      backend,
      storage,
      onSlotMoves: (moves) => backend.ops.copyKVSlots(storage, moves.source, moves.target),
    });
    this.cache.attach(tree);
    // Registered after the cache's own listener, so the cache has applied a change when this runs.
    this.stopListening = tree.on('change', (change) => this.followChange(change));
  }

  /** True once {@link TreeModelRunner.dispose} ran. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Tokens of the tree that have no KV yet (what the next {@link TreeModelRunner.evaluate} computes). */
  get pendingTokens(): number {
    const view = this.cache.view();
    let pending = 0;
    for (const node of view.order) pending += view.tokenCount[node]! - this.computedOf(node);
    return pending;
  }

  /**
   * How many leading tokens of `node` have KV.
   * @throws NotFoundError if the node is not in the tree.
   */
  computedTokens(node: number): number {
    this.tree.tokenCount(node);
    return this.computedOf(node);
  }

  /**
   * Computes every token of the tree that has no KV yet, in one forward pass with one tree-attention
   * plan, and returns the requested rows' log-probabilities (or logits).
   *
   * @throws InvalidStateError when no token is pending or after dispose; whatever the model throws
   *   (nothing is marked computed then).
   * @example
   * ```ts
   * tree.append(leaf, token);
   * const step = await runner.evaluate();
   * const next = step.row(leaf)!; // log-probabilities of the token after `token`
   * ```
   */
  async evaluate(options: EvaluateOptions = {}): Promise<TreeEvaluation> {
    if (this.isDisposed)
      throw new InvalidStateError('the runner was disposed; create a new one', { argument: 'runner' });
    const rowsOption = options.rows ?? 'last';
    const rowsOf = typeof rowsOption === 'function' ? rowsOption : () => rowsOption;
    const view = this.cache.view();
    const order = view.order;
    const numIds = view.parent.length;
    const offsets = new Int32Array(numIds);
    /** `[idLimit]` what this pass does with each node's pending tokens (indices of NODE_ROWS; 0: nothing pending). */
    const nodeRows = new Uint8Array(numIds);
    /** `[idLimit]` 1 where a node or one of its ancestors has pending tokens left for a later pass. */
    const behindDeferred = new Uint8Array(numIds);
    let queries = 0;
    let treeTokens = 0;
    for (const node of order) {
      const parent = view.parent[node]!;
      offsets[node] = parent < 0 ? 0 : offsets[parent]! + view.tokenCount[parent]!;
      treeTokens += view.tokenCount[node]!;
      if (parent >= 0) behindDeferred[node] = behindDeferred[parent]!;
      const pending = view.tokenCount[node]! - this.computedOf(node);
      if (pending === 0) continue;
      const choice = rowsOf(node);
      const code = NODE_ROWS.indexOf(choice);
      if (code < 0) {
        throw new InvalidArgumentError(`rows(${node}) must be one of ${NODE_ROWS.join(', ')}`, {
          argument: 'options.rows',
          expected: NODE_ROWS,
          actual: choice,
        });
      }
      if (choice === 'defer') {
        behindDeferred[node] = 1;
        continue;
      }
      if (behindDeferred[node] === 1) {
        throw new InvalidArgumentError(
          `node ${node} has pending tokens below a node whose pending tokens are deferred; defer it too`,
          { argument: 'options.rows', expected: "'defer'", actual: choice },
        );
      }
      nodeRows[node] = code + 1;
      queries += pending;
    }
    if (queries === 0) {
      throw new InvalidStateError('no token is waiting for evaluation; append tokens to the tree first', {
        argument: 'tree',
        expected: 'pending tokens',
        actual: 0,
      });
    }
    const queryNodes = new Int32Array(queries);
    const queryPositions = new Int32Array(queries);
    const tokens = new Int32Array(queries);
    const slots = new Int32Array(queries);
    const ropePositions = new Int32Array(queries);
    const outputRows: number[] = [];
    const touched: [number, number][] = [];
    let row = 0;
    let sequenceTokens = 0;
    for (const node of order) {
      const rowsMode = NODE_ROWS[nodeRows[node]! - 1];
      if (rowsMode === undefined) continue;
      const count = view.tokenCount[node]!;
      const start = this.computedOf(node);
      touched.push([node, count]);
      const nodeTokens = this.tree.tokens(node);
      slots.set(this.cache.slotsOf(node, start, count), row);
      for (let position = start; position < count; position++, row++) {
        queryNodes[row] = node;
        queryPositions[row] = position;
        tokens[row] = nodeTokens[position]!;
        ropePositions[row] = offsets[node]! + position;
        sequenceTokens += offsets[node]! + position + 1;
        if (rowsMode === 'all' || (rowsMode === 'last' && position === count - 1)) outputRows.push(row);
      }
    }
    // Read everything the statistics need from the view now: the tree may change while the pass runs.
    const leafCounts = new Int32Array(numIds);
    let leaves = 0;
    for (let index = order.length - 1; index >= 0; index--) {
      const node = order[index]!;
      if (leafCounts[node] === 0) {
        leafCounts[node] = 1;
        leaves++;
      }
      const parent = view.parent[node]!;
      if (parent >= 0) leafCounts[parent]! += leafCounts[node]!;
    }
    let pagesShared = 0;
    for (const node of order)
      if (leafCounts[node]! > 1) pagesShared += view.pageIndptr[node + 1]! - view.pageIndptr[node]!;
    const treeNodes = order.length;

    const shape = this.model.attentionShape(this.kvDtype);
    const planStart = performance.now();
    const plan = planTreeAttention(
      view,
      { nodes: queryNodes, positions: queryPositions },
      { ...this.plannerOptions, strategy: this.planStrategy, shape },
    );
    const planMilliseconds = performance.now() - planStart;
    const backend = this.model.backend;
    const forwardStart = performance.now();
    const prepared = backend.preparePlan(plan, shape);
    const rowIndices = Int32Array.from(outputRows);
    let values: Float32Array;
    try {
      // The model always returns at least one row; a pass that wants none computes the last and drops it.
      const forwardRows = rowIndices.length === 0 ? Int32Array.of(queries - 1) : rowIndices;
      const result = await this.model.forward({
        tokens,
        positions: ropePositions,
        slots,
        storage: this.storage,
        plan: prepared,
        ...(forwardRows.length === queries ? {} : { outputRows: forwardRows }),
        output: options.output ?? 'log-probabilities',
      });
      values = rowIndices.length === 0 ? new Float32Array(0) : result.logits;
    } finally {
      prepared.dispose();
    }
    const forwardMilliseconds = performance.now() - forwardStart;
    for (const [node, count] of touched) this.setComputed(node, count);

    const layerBytes = this.model.config.numLayers;
    const bytesPerToken =
      kvBytesPerToken({ numKvHeads: shape.numKvHeads, headDim: shape.headDim, dtype: this.kvDtype }) *
      layerBytes;
    const stats: StepStats = {
      queries,
      outputRows: rowIndices.length,
      treeNodes,
      treeTokens,
      leaves,
      planStrategy: plan.strategy,
      kvBytesRead: plan.io.kvBytesRead * layerBytes,
      sequenceKvBytes: sequenceTokens * bytesPerToken,
      uniqueKvBytes: plan.io.uniqueKvBytes * layerBytes,
      pagesUsed: this.pool.usedCount,
      pagesShared,
      planMilliseconds,
      forwardMilliseconds,
    };
    const vocabSize = this.model.config.vocabSize;
    const rowNodes = Int32Array.from(rowIndices, (index) => queryNodes[index]!);
    const rowPositions = Int32Array.from(rowIndices, (index) => queryPositions[index]!);
    // A node's rows are contiguous with ascending positions: remember where each node's rows start and end.
    const rowRanges = new Map<number, [number, number]>();
    for (let index = 0; index < rowNodes.length; index++) {
      const range = rowRanges.get(rowNodes[index]!);
      if (range === undefined) rowRanges.set(rowNodes[index]!, [index, index + 1]);
      else range[1] = index + 1;
    }
    return {
      rows: rowIndices.length,
      nodes: rowNodes,
      positions: rowPositions,
      values,
      vocabSize,
      stats,
      row(node: number, position?: number): Float32Array | undefined {
        const range = rowRanges.get(node);
        if (range === undefined) return undefined;
        let found = range[1] - 1;
        if (position !== undefined) {
          found = range[0] + (position - rowPositions[range[0]]!);
          if (found < range[0] || found >= range[1] || rowPositions[found] !== position) {
            found = -1;
            for (let index = range[0]; index < range[1]; index++)
              if (rowPositions[index] === position) found = index;
            if (found < 0) return undefined;
          }
        }
        return values.subarray(found * vocabSize, (found + 1) * vocabSize);
      },
    };
  }

  /** Releases every page the tree holds and stops following it (idempotent). The tree itself is left as is. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.stopListening();
    this.cache.dispose();
  }

  private computedOf(node: number): number {
    return node < this.computed.length ? this.computed[node]! : 0;
  }

  private setComputed(node: number, count: number): void {
    if (node >= this.computed.length) {
      const grown = new Int32Array(Math.max(node + 1, this.computed.length * 2));
      grown.set(this.computed);
      this.computed = grown;
    }
    this.computed[node] = count;
  }

  private followChange(change: TreeChange): void {
    if (change.type !== 'commit') return;
    // Tokens moved into `into` keep their KV (the cache copied it) as long as they were computed.
    let computed = this.computedOf(change.into);
    if (computed === change.start) {
      for (let index = 0; index < change.merged.length; index++) {
        const accepted = change.acceptedCounts[index]!;
        const had = this.computedOf(change.merged[index]!);
        computed += Math.min(accepted, had);
        if (had < accepted) break;
      }
    }
    this.setComputed(change.into, computed);
    for (const id of change.removed) if (id < this.computed.length) this.computed[id] = 0;
  }
}
