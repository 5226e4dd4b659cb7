import type { KVStorage } from '@deft/core';
import { CapacityError, InvalidArgumentError } from '@deft/core';
import type { PagePool } from '@deft/kv-cache';
import type { LlamaModel } from '@deft/model';
import type { PlannerOptions } from '@deft/planner';
import { TokenTree } from '@deft/tree';
import type { StepStats } from '../runner/step-stats.js';
import { type EvaluateOptions, type TreeEvaluation, TreeModelRunner } from '../runner/tree-model-runner.js';
import { type DecodeStats, summarizeSteps } from './decode-stats.js';

/** What a session uses of its engine (a `DecodingEngine` is one): the model, the pool, the storage, the planner options. */
export interface SessionEngine {
  readonly model: LlamaModel;
  readonly pool: PagePool;
  readonly storage: KVStorage;
  readonly options: { readonly planner?: PlannerOptions };
}

/**
 * One search: a {@link TokenTree} whose root holds the prompt, its KV pages in the engine's pool, and the
 * statistics of every forward pass. Strategies grow and prune `tree` and call {@link DecodingSession.evaluate}
 * once per step; {@link DecodingSession.release} gives every page back (the tree object stays readable).
 *
 * @example
 * ```ts
 * const session = engine.openSession(prompt);
 * try {
 *   const prefill = await session.evaluate();
 *   session.tree.append(session.tree.root, argmaxToken(prefill.row(session.tree.root)!).token);
 * } finally {
 *   session.release();
 * }
 * ```
 */
export class DecodingSession {
  readonly engine: SessionEngine;
  readonly tree: TokenTree;
  readonly runner: TreeModelRunner;
  /** Length of the prompt (the root's first tokens). */
  readonly promptLength: number;
  /**
   * The model's context length (llama2.c `seq_len`, GGUF `<arch>.context_length`): the most tokens a
   * sequence holds, prompt and generated tokens together. Strategies stop a sequence that reaches it with
   * the finish reason `'context'`.
   */
  readonly contextLength: number;
  private readonly stepStats: StepStats[] = [];

  /**
   * @throws InvalidArgumentError for an empty prompt, an invalid id, or a prompt that leaves no room in
   * the model's context length for a generated token; CapacityError if it does not fit in the pool.
   */
  constructor(engine: SessionEngine, prompt: ArrayLike<number>) {
    if (prompt.length === 0) {
      throw new InvalidArgumentError('the prompt must hold at least one token (start it with BOS)', {
        argument: 'prompt',
        expected: '>= 1 token',
        actual: 0,
      });
    }
    const contextLength = engine.model.config.contextLength;
    if (prompt.length >= contextLength) {
      throw new InvalidArgumentError(
        `the prompt holds ${prompt.length} tokens, but the model's context length is ${contextLength} ` +
          `(prompt and generated tokens together); shorten the prompt to at most ${contextLength - 1} tokens`,
        { argument: 'prompt', expected: `<= ${contextLength - 1} tokens`, actual: prompt.length },
      );
    }
    const vocabSize = engine.model.config.vocabSize;
    for (let index = 0; index < prompt.length; index++) {
      const token = prompt[index]!;
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new InvalidArgumentError(
          `prompt[${index}] = ${token} is not a token id of the model (vocabulary ${vocabSize})`,
          {
            argument: `prompt[${index}]`,
            expected: `0 <= id < ${vocabSize}`,
            actual: token,
          },
        );
      }
    }
    this.engine = engine;
    this.promptLength = prompt.length;
    this.contextLength = contextLength;
    this.tree = TokenTree.create(prompt);
    const { options } = engine;
    this.runner = new TreeModelRunner({
      model: engine.model,
      tree: this.tree,
      pool: engine.pool,
      storage: engine.storage,
      ...(options.planner === undefined ? {} : { planner: options.planner }),
    });
  }

  /** Statistics of every forward pass so far. */
  get steps(): readonly StepStats[] {
    return this.stepStats;
  }

  /** True once the session was released. */
  get released(): boolean {
    return this.runner.disposed;
  }

  /**
   * Runs every token of the tree that has no KV yet through the model in one pass (log-probabilities by
   * default) and records the pass's statistics.
   * @throws InvalidStateError when nothing is pending or after release; CapacityError when a path of the
   * tree holds more tokens than the model's context length (nothing is evaluated).
   */
  async evaluate(options: EvaluateOptions = {}): Promise<TreeEvaluation> {
    for (const leaf of this.tree.leaves()) {
      const length = this.tree.pathTokenCount(leaf);
      if (length > this.contextLength) {
        throw new CapacityError(
          `node ${leaf} ends at ${length} tokens, beyond the model's context length of ${this.contextLength}; ` +
            'stop the sequence (finish reason "context") or prune the node before evaluating',
          { argument: 'tree', expected: `<= ${this.contextLength} tokens per path`, actual: length },
        );
      }
    }
    const evaluation = await this.runner.evaluate(options);
    this.stepStats.push(evaluation.stats);
    return evaluation;
  }

  /** Totals of the passes so far. */
  summary(): DecodeStats {
    return summarizeSteps(this.stepStats);
  }

  /** Prunes every subtree that holds none of the `live` nodes (their pages are freed); returns the removed count. */
  pruneExcept(live: Iterable<number>): number {
    const tree = this.tree;
    const keep = new Set<number>();
    for (const node of live) {
      for (let id = node; id >= 0 && !keep.has(id); id = tree.parent(id)) keep.add(id);
    }
    keep.add(tree.root);
    let removed = 0;
    const stack = [tree.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      for (const child of tree.children(node)) {
        if (keep.has(child)) stack.push(child);
        else removed += tree.prune(child).length;
      }
    }
    return removed;
  }

  /**
   * Tokens a sequence ending at `node` may still gain before it fills the model's context length
   * (`contextLength - pathTokenCount(node)`, at least 0).
   */
  contextRoom(node: number): number {
    return Math.max(0, this.contextLength - this.tree.pathTokenCount(node));
  }

  /** Gives every KV page of the tree back to the pool (idempotent). */
  release(): void {
    this.runner.dispose();
  }
}
