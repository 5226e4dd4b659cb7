import type { KVStorage } from '@deft/core';
import { CapacityError, InvalidArgumentError, InvalidStateError } from '@deft/core';
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
 * Where a session lives and how its passes run. A {@link DecodingEngine} gives each session a tree of its
 * own; a `SharedTreeEngine` places it in one tree shared by every live session, below the shared pieces
 * of its prompt.
 */
export interface SessionPlacement {
  readonly tree: TokenTree;
  /** The runner that evaluates `tree` (shared by every session of a shared tree). */
  readonly runner: TreeModelRunner;
  /** The node holding the prompt's last token; the session's sequences grow in it and below it. */
  readonly root: number;
  /** Runs the session's pending tokens through the model (in a pass of its own or a shared one). */
  evaluate(options: EvaluateOptions): Promise<TreeEvaluation>;
  /** Gives the session's pages back (idempotent). */
  release(): void;
  readonly released: boolean;
}

/** The placement of a {@link DecodingEngine}'s sessions: a tree and a runner of their own. */
function ownTree(engine: SessionEngine, prompt: ArrayLike<number>): SessionPlacement {
  const tree = TokenTree.create(prompt);
  const { options } = engine;
  const runner = new TreeModelRunner({
    model: engine.model,
    tree,
    pool: engine.pool,
    storage: engine.storage,
    ...(options.planner === undefined ? {} : { planner: options.planner }),
  });
  return {
    tree,
    runner,
    root: tree.root,
    evaluate: (evaluateOptions) => runner.evaluate(evaluateOptions),
    release: () => runner.dispose(),
    get released() {
      return runner.disposed;
    },
  };
}

/**
 * One search: the prompt in a {@link TokenTree} (by default a tree of its own whose root holds the prompt;
 * in a shared tree, the node {@link DecodingSession.root} below the shared pieces of the prompt), its KV
 * pages in the engine's pool, and the statistics of every forward pass. Strategies grow and prune the tree
 * below `root` and call {@link DecodingSession.evaluate} once per step; {@link DecodingSession.release}
 * gives every page back (the tree object stays readable).
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
  /**
   * The node holding the prompt's last token: the session's sequences grow in it (appended) and below it
   * (forked). `tree.root` for a session with a tree of its own.
   */
  readonly root: number;
  /** Length of the prompt (every token on the path to `root`'s first tokens). */
  readonly promptLength: number;
  /**
   * The model's context length (llama2.c `seq_len`, GGUF `<arch>.context_length`): the most tokens a
   * sequence holds, prompt and generated tokens together. Strategies stop a sequence that reaches it with
   * the finish reason `'context'`.
   */
  readonly contextLength: number;
  private readonly stepStats: StepStats[] = [];
  private readonly placement: SessionPlacement;

  /**
   * @param place where the session lives, given the checked prompt (default: a tree of its own); a
   *   `SharedTreeEngine` passes its own.
   * @throws InvalidArgumentError for an empty prompt, an invalid id, or a prompt that leaves no room in
   * the model's context length for a generated token; CapacityError if it does not fit in the pool.
   */
  constructor(
    engine: SessionEngine,
    prompt: ArrayLike<number>,
    place: (prompt: ArrayLike<number>) => SessionPlacement = (checked) => ownTree(engine, checked),
  ) {
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
    this.placement = place(prompt);
    this.tree = this.placement.tree;
    this.runner = this.placement.runner;
    this.root = this.placement.root;
  }

  /** Statistics of every forward pass so far. */
  get steps(): readonly StepStats[] {
    return this.stepStats;
  }

  /** True once the session was released. */
  get released(): boolean {
    return this.placement.released;
  }

  /**
   * Runs every token of the session that has no KV yet through the model in one pass (log-probabilities by
   * default) and records the pass's statistics. In a shared tree the pass is shared with the other
   * sessions ready for the same step, and its statistics are those of the whole pass.
   * @throws InvalidStateError when nothing is pending or after release; CapacityError when a path of the
   * session holds more tokens than the model's context length (nothing is evaluated).
   */
  async evaluate(options: EvaluateOptions = {}): Promise<TreeEvaluation> {
    if (this.released) {
      throw new InvalidStateError('the session was released; open a new one', { argument: 'session' });
    }
    for (const leaf of this.leaves()) {
      const length = this.tree.pathTokenCount(leaf);
      if (length > this.contextLength) {
        throw new CapacityError(
          `node ${leaf} ends at ${length} tokens, beyond the model's context length of ${this.contextLength}; ` +
            'stop the sequence (finish reason "context") or prune the node before evaluating',
          { argument: 'tree', expected: `<= ${this.contextLength} tokens per path`, actual: length },
        );
      }
    }
    const evaluation = await this.placement.evaluate(options);
    this.stepStats.push(evaluation.stats);
    return evaluation;
  }

  /** Totals of the passes so far. */
  summary(): DecodeStats {
    return summarizeSteps(this.stepStats);
  }

  /** The leaves of the session's part of the tree (`root` and below), depth-first. */
  leaves(): number[] {
    const leaves: number[] = [];
    const stack = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      const children = this.tree.children(node);
      if (children.length === 0) leaves.push(node);
      for (let index = children.length - 1; index >= 0; index--) stack.push(children[index]!);
    }
    return leaves;
  }

  /**
   * Prunes every subtree below `root` that holds none of the `live` nodes (their pages are freed); returns
   * the removed count.
   */
  pruneExcept(live: Iterable<number>): number {
    const tree = this.tree;
    const keep = new Set<number>([this.root]);
    for (const node of live) {
      for (let id = node; id >= 0 && !keep.has(id); id = tree.parent(id)) keep.add(id);
    }
    let removed = 0;
    const stack = [this.root];
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

  /** Gives every KV page of the session back to the pool (idempotent). */
  release(): void {
    this.placement.release();
  }
}
