import { CapacityError, InvalidArgumentError, InvalidStateError } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import { TokenTree } from '@deft/tree';
import type { StepStats } from '../runner/step-stats.js';
import {
  type EvaluateOptions,
  type NodeRows,
  type TreeEvaluation,
  TreeModelRunner,
} from '../runner/tree-model-runner.js';
import type { DecodingEngine } from './decoding-engine.js';
import { DecodingSession, type SessionPlacement } from './decoding-session.js';
import type { SessionOpener } from './session-opener.js';

/** Options of {@link SharedTreeEngine.create}. */
export interface SharedTreeEngineOptions {
  /**
   * Prompt tokens per shared piece (default: the smallest multiple of the page size that is at least 16).
   * Prompts share their leading whole pieces; a multiple of the page size wastes no page.
   */
  readonly pieceTokens?: number;
  /**
   * Most pages that idle prompt pieces (no live session below them) keep for later requests, evicted
   * least recently used (default: a quarter of the pool). Idle pieces are also evicted when a new prompt
   * needs their pages, and after each pass until one page per live leaf is free; before forking many
   * sequences at once, call {@link SharedTreeEngine.evictCached} with the pages they need.
   */
  readonly cachePages?: number;
}

/** Totals of a {@link SharedTreeEngine}'s forward passes and prompts. KV bytes cover every layer, K and V. */
export interface SharedTreeStats {
  /** Forward passes run. */
  readonly passes: number;
  /** Σ over passes of the sessions served by the pass (a session step shares its pass with the others). */
  readonly sessionSteps: number;
  /** Most sessions served by one pass. */
  readonly maxSessionsPerPass: number;
  /** Tokens run through the model. */
  readonly queries: number;
  /** KV bytes the shared tree's plans read. */
  readonly kvBytesRead: number;
  /** KV bytes sequence-based attention (every query reading its whole path) would read for the same queries. */
  readonly sequenceKvBytes: number;
  /** Prompt tokens of every session opened. */
  readonly promptTokens: number;
  /** Prompt tokens found in the tree already (a live or cached piece): placed by reference, not computed again. */
  readonly reusedPromptTokens: number;
  /** The last pass's statistics (`undefined` before the first). */
  readonly lastPass: StepStats | undefined;
}

function releasedWhileWaiting(): InvalidStateError {
  return new InvalidStateError('the session was released while waiting for a pass', { argument: 'session' });
}

/** A live session of the shared tree. */
interface Member {
  readonly root: number;
  /** The shared pieces on the path to `root`, top-down. */
  readonly pieces: readonly number[];
  waiting: Waiting | undefined;
  released: boolean;
}

interface Waiting {
  readonly rows: NonNullable<EvaluateOptions['rows']>;
  readonly resolve: (evaluation: TreeEvaluation) => void;
  readonly reject: (error: unknown) => void;
}

/** A shared prompt piece: a node of the tree holding `pieceTokens` prompt tokens. */
interface Piece {
  readonly key: string;
  readonly parent: number;
  /** Live sessions whose prompt passes through the piece. */
  users: number;
  /** When a session last used it (a counter), for least-recently-used eviction. */
  lastUsed: number;
}

/**
 * Continuous batching over one token tree: every session opened here lives in the same {@link TokenTree}
 * (its root is empty), and every forward pass serves all the sessions ready for a step at once, so one
 * plan reads each shared prefix once. Sessions join and leave between passes.
 *
 * - **Shared prompts.** A prompt is placed as a chain of whole pieces of `pieceTokens` tokens, found by
 *   content below the same chain (a radix tree at piece granularity), and a private tail node holding the
 *   rest (at least its last token, whose logits start the session). Concurrent requests with a common
 *   system prompt, and the `n` sequences of one request, share its pieces by reference.
 * - **Prefix cache.** A piece no live session uses stays in the tree with its KV (computed once), so a
 *   later prompt reuses it; idle pieces are evicted least recently used, leaves first, beyond
 *   `cachePages`, for a new prompt, and after each pass to keep a free page per live leaf.
 * - **Steps.** {@link DecodingSession.evaluate} waits for the next pass; a pass starts on the next turn of
 *   the event loop after a session asks and serves every session waiting then. The pending tokens of a
 *   session that is not waiting are left for a later pass, so a slow consumer delays only itself.
 *
 * Every strategy of this package runs on it unchanged (they take a {@link SessionOpener}).
 *
 * @example
 * ```ts
 * const shared = SharedTreeEngine.create(DecodingEngine.create(model, { numPages: 1024 }));
 * const [a, b] = await Promise.all([
 *   runStrategy(generate(shared, { prompt: system.concat(questionA), maxTokens: 32 })),
 *   runStrategy(bestOfN(shared, { prompt: system.concat(questionB), n: 4, maxTokens: 32 })),
 * ]); // one pass per step for both, the system prompt's KV read once per pass
 * shared.stats.sequenceKvBytes / shared.stats.kvBytesRead;
 * ```
 */
export class SharedTreeEngine implements SessionOpener {
  readonly engine: DecodingEngine;
  /** The shared tree (root: empty). */
  readonly tree: TokenTree;
  readonly runner: TreeModelRunner;
  readonly pieceTokens: number;
  readonly cachePages: number;
  private readonly members = new Map<number, Member>();
  private readonly pieces = new Map<number, Piece>();
  /** Piece node by `${parent}:${tokens}`. */
  private readonly pieceByKey = new Map<string, number>();
  private clock = 0;
  private scheduled = false;
  private passInFlight = false;
  private readonly afterPass: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private isDisposed = false;
  private totals = {
    passes: 0,
    sessionSteps: 0,
    maxSessionsPerPass: 0,
    queries: 0,
    kvBytesRead: 0,
    sequenceKvBytes: 0,
    promptTokens: 0,
    reusedPromptTokens: 0,
  };
  private last: StepStats | undefined;

  private constructor(engine: DecodingEngine, pieceTokens: number, cachePages: number) {
    this.engine = engine;
    this.pieceTokens = pieceTokens;
    this.cachePages = cachePages;
    this.tree = TokenTree.create([]);
    const planner = engine.options.planner;
    this.runner = new TreeModelRunner({
      model: engine.model,
      tree: this.tree,
      pool: engine.pool,
      storage: engine.storage,
      ...(planner === undefined ? {} : { planner }),
    });
  }

  /**
   * A shared tree in an engine's pool and storage. Run only shared-tree sessions on that engine while it
   * lives (its pool is shared), and dispose it before the engine.
   * @throws InvalidArgumentError for a bad option.
   * @example
   * ```ts
   * const shared = SharedTreeEngine.create(engine, { pieceTokens: 16, cachePages: 256 });
   * ```
   */
  static create(engine: DecodingEngine, options: SharedTreeEngineOptions = {}): SharedTreeEngine {
    if (engine.disposed) {
      throw new InvalidStateError('the engine was disposed; create a new one', { argument: 'engine' });
    }
    const pageSize = engine.pool.pageSize;
    const pieceTokens = assertInteger(
      'options.pieceTokens',
      options.pieceTokens ?? pageSize * Math.ceil(16 / pageSize),
      1,
    );
    const cachePages = assertInteger(
      'options.cachePages',
      options.cachePages ?? Math.floor(engine.pool.numPages / 4),
      0,
    );
    return new SharedTreeEngine(engine, pieceTokens, cachePages);
  }

  /** True after {@link SharedTreeEngine.dispose}. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Live sessions. */
  get sessionCount(): number {
    return this.members.size;
  }

  /** Pages held by idle prompt pieces (no live session below them), kept for reuse. */
  get cachedPages(): number {
    let pages = 0;
    for (const [node, piece] of this.pieces) if (piece.users === 0) pages += this.pagesOf(node);
    return pages;
  }

  /** Totals of the passes and prompts so far. */
  get stats(): SharedTreeStats {
    return { ...this.totals, lastPass: this.last };
  }

  /**
   * Opens a session whose prompt joins the shared tree: whole pieces already there are shared, the rest
   * is placed (and computed by the session's first pass).
   * @throws InvalidArgumentError for a bad prompt; CapacityError when its new pages do not fit even after
   *   evicting every idle piece (nothing changed); InvalidStateError after dispose.
   * @example
   * ```ts
   * const session = shared.openSession(prompt); // strategies call this themselves
   * ```
   */
  openSession(prompt: ArrayLike<number>): DecodingSession {
    if (this.isDisposed) {
      throw new InvalidStateError('the shared tree was disposed; create a new one', { argument: 'engine' });
    }
    return new DecodingSession(this.engine, prompt, (checked) => this.place(checked));
  }

  /**
   * Resolves once no forward pass is running or about to run, so every release asked for so far has given
   * its pages back.
   * @example
   * ```ts
   * session.release();
   * await shared.whenIdle(); // the pool no longer holds the session's pages
   * ```
   */
  whenIdle(): Promise<void> {
    if (!this.passInFlight && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Evicts idle pieces, least recently used and leaves first, until `freePages` pages are free or none is
   * left; returns the pages freed. Deferred while a pass runs.
   */
  evictCached(freePages: number = this.engine.pool.numPages): number {
    if (this.passInFlight) return 0;
    const pool = this.engine.pool;
    const before = pool.freeCount;
    while (pool.freeCount < freePages) {
      const victim = this.evictionCandidate(new Set());
      if (victim === undefined) break;
      this.dropPiece(victim);
    }
    return pool.freeCount - before;
  }

  /**
   * Prunes every idle piece and stops; sessions must be released first (their strategies finished).
   * Idempotent; it does not dispose the engine.
   * @throws InvalidStateError while sessions are live.
   */
  dispose(): void {
    if (this.isDisposed) return;
    if (this.members.size > 0) {
      throw new InvalidStateError(
        `${this.members.size} sessions are still live; finish or release them before disposing the shared tree`,
        { argument: 'engine', expected: 0, actual: this.members.size },
      );
    }
    this.isDisposed = true;
    this.runner.dispose();
    this.pieces.clear();
    this.pieceByKey.clear();
  }

  private pagesOf(node: number): number {
    return this.runner.cache.pagesOf(node).length;
  }

  private pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.engine.pool.pageSize);
  }

  /** Places a checked prompt: shared pieces, then a private tail node. */
  private place(prompt: ArrayLike<number>): SessionPlacement {
    const tree = this.tree;
    const size = this.pieceTokens;
    const wholePieces = Math.floor((prompt.length - 1) / size);
    const path: number[] = [];
    let parent = tree.root;
    let matched = 0;
    for (; matched < wholePieces; matched++) {
      const key = `${parent}:${Array.prototype.slice.call(prompt, matched * size, (matched + 1) * size).join(',')}`;
      const found = this.pieceByKey.get(key);
      if (found === undefined) break;
      path.push(found);
      parent = found;
    }
    const newPieces = wholePieces - matched;
    const tailLength = prompt.length - wholePieces * size;
    const needed = newPieces * this.pagesFor(size) + this.pagesFor(tailLength);
    this.makeRoom(needed, new Set(path));
    const created: number[] = [];
    let root: number;
    try {
      for (let index = matched; index < wholePieces; index++) {
        const tokens = Array.prototype.slice.call(prompt, index * size, (index + 1) * size) as number[];
        const [node] = tree.fork(parent, 1);
        created.push(node!);
        tree.append(node!, tokens);
        const key = `${parent}:${tokens.join(',')}`;
        this.pieces.set(node!, { key, parent, users: 0, lastUsed: 0 });
        this.pieceByKey.set(key, node!);
        path.push(node!);
        parent = node!;
      }
      [root] = tree.fork(parent, 1) as [number];
      created.push(root);
      tree.append(root, Array.prototype.slice.call(prompt, wholePieces * size) as number[]);
    } catch (error) {
      // Put the tree back as it was: the first created node holds every other one below it.
      if (created.length > 0 && tree.has(created[0]!)) {
        for (const node of tree.prune(created[0]!)) this.forgetPiece(node);
      }
      throw error;
    }
    const stamp = ++this.clock;
    for (const node of path) {
      const piece = this.pieces.get(node)!;
      piece.users++;
      piece.lastUsed = stamp;
    }
    const member: Member = { root, pieces: path, waiting: undefined, released: false };
    this.members.set(root, member);
    this.totals.promptTokens += prompt.length;
    this.totals.reusedPromptTokens += matched * size;
    return {
      tree,
      runner: this.runner,
      root,
      evaluate: (options) => this.evaluateMember(member, options),
      release: () => this.releaseMember(member),
      get released() {
        return member.released;
      },
    };
  }

  /**
   * Frees `needed` pages by evicting idle pieces not in `keep`, or throws CapacityError having evicted
   * nothing when even all of them would not do.
   */
  private makeRoom(needed: number, keep: ReadonlySet<number>): void {
    const pool = this.engine.pool;
    if (pool.freeCount >= needed) return;
    let evictable = 0;
    for (const [node, piece] of this.pieces)
      if (piece.users === 0 && !keep.has(node)) evictable += this.pagesOf(node);
    if (this.passInFlight || pool.freeCount + evictable < needed) {
      throw new CapacityError(
        `the prompt needs ${needed} free KV pages and the pool has ${pool.freeCount} free` +
          (this.passInFlight ? '' : ` (${evictable} more in idle cached prompts)`) +
          '; retry when running requests have finished, or give the engine more pages',
        { argument: 'prompt', expected: `<= ${pool.freeCount + evictable} pages`, actual: needed },
      );
    }
    while (pool.freeCount < needed) this.dropPiece(this.evictionCandidate(keep)!);
  }

  /** The least recently used idle piece without children that is not in `keep`. */
  private evictionCandidate(keep: ReadonlySet<number>): number | undefined {
    let best: number | undefined;
    let bestStamp = Number.POSITIVE_INFINITY;
    for (const [node, piece] of this.pieces) {
      if (piece.users > 0 || keep.has(node) || !this.tree.isLeaf(node)) continue;
      if (piece.lastUsed < bestStamp) {
        best = node;
        bestStamp = piece.lastUsed;
      }
    }
    return best;
  }

  private dropPiece(node: number): void {
    for (const id of this.tree.prune(node)) this.forgetPiece(id);
  }

  private forgetPiece(node: number): void {
    const piece = this.pieces.get(node);
    if (piece === undefined) return;
    this.pieces.delete(node);
    this.pieceByKey.delete(piece.key);
  }

  private evaluateMember(member: Member, options: EvaluateOptions): Promise<TreeEvaluation> {
    if (member.released) {
      return Promise.reject(
        new InvalidStateError('the session was released; open a new one', { argument: 'session' }),
      );
    }
    if (member.waiting !== undefined) {
      return Promise.reject(
        new InvalidStateError('the session is already waiting for a pass; await it first', {
          argument: 'session',
        }),
      );
    }
    if ((options.output ?? 'log-probabilities') !== 'log-probabilities') {
      return Promise.reject(
        new InvalidArgumentError('sessions of a shared tree get log-probabilities only', {
          argument: 'options.output',
          expected: 'log-probabilities',
          actual: options.output,
        }),
      );
    }
    if (!this.hasPending(member.root)) {
      return Promise.reject(
        new InvalidStateError('no token of the session is waiting for evaluation; append tokens first', {
          argument: 'tree',
          expected: 'pending tokens',
          actual: 0,
        }),
      );
    }
    return new Promise<TreeEvaluation>((resolve, reject) => {
      member.waiting = { rows: options.rows ?? 'last', resolve, reject };
      this.schedule();
    });
  }

  private hasPending(root: number): boolean {
    const stack = [root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (this.runner.computedTokens(node) < this.tree.tokenCount(node)) return true;
      stack.push(...this.tree.children(node));
    }
    return false;
  }

  private schedule(): void {
    if (this.scheduled || this.passInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.runPass().finally(() => {
        if (!this.passInFlight && !this.scheduled)
          for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    });
  }

  /** The member whose part of the tree holds `node` (walking up to a session root), if any. */
  private memberOf(node: number): Member | undefined {
    for (let id = node; id >= 0; id = this.tree.parent(id)) {
      const member = this.members.get(id);
      if (member !== undefined) return member;
      if (this.pieces.has(id)) return undefined;
    }
    return undefined;
  }

  private async runPass(): Promise<void> {
    const served = [...this.members.values()].filter((member) => member.waiting !== undefined);
    if (served.length === 0) return;
    const waits = new Map(served.map((member) => [member, member.waiting!]));
    for (const member of served) member.waiting = undefined;
    const rows = (node: number): NodeRows => {
      if (this.pieces.has(node)) return 'none';
      const member = this.memberOf(node);
      const wait = member === undefined ? undefined : waits.get(member);
      if (wait === undefined) return 'defer';
      return typeof wait.rows === 'function' ? wait.rows(node) : wait.rows;
    };
    this.passInFlight = true;
    let evaluation: TreeEvaluation | undefined;
    let failure: unknown;
    try {
      evaluation = await this.runner.evaluate({ rows });
    } catch (error) {
      failure = error;
    } finally {
      this.passInFlight = false;
    }
    if (evaluation !== undefined) {
      const stats = evaluation.stats;
      this.last = stats;
      const totals = this.totals;
      totals.passes++;
      totals.sessionSteps += served.length;
      totals.maxSessionsPerPass = Math.max(totals.maxSessionsPerPass, served.length);
      totals.queries += stats.queries;
      totals.kvBytesRead += stats.kvBytesRead;
      totals.sequenceKvBytes += stats.sequenceKvBytes;
    }
    for (const task of this.afterPass.splice(0)) task();
    // Each growing sequence may need a fresh page before the next pass: keep that many free if idle pieces allow.
    if (this.members.size > 0) this.evictCached(this.liveLeaves());
    for (const [member, wait] of waits) {
      if (member.released) wait.reject(releasedWhileWaiting());
      else if (evaluation !== undefined) wait.resolve(evaluation);
      else wait.reject(failure);
    }
    if ([...this.members.values()].some((member) => member.waiting !== undefined)) this.schedule();
  }

  private liveLeaves(): number {
    let leaves = 0;
    for (const root of this.members.keys()) {
      const stack = [root];
      while (stack.length > 0) {
        const children = this.tree.children(stack.pop()!);
        if (children.length === 0) leaves++;
        stack.push(...children);
      }
    }
    return leaves;
  }

  private releaseMember(member: Member): void {
    if (member.released) return;
    member.released = true;
    const waiting = member.waiting;
    member.waiting = undefined;
    waiting?.reject(releasedWhileWaiting());
    const finish = () => {
      this.members.delete(member.root);
      if (this.tree.has(member.root)) this.tree.prune(member.root);
      const stamp = ++this.clock;
      for (const node of member.pieces) {
        const piece = this.pieces.get(node);
        if (piece === undefined) continue;
        piece.users--;
        piece.lastUsed = stamp;
      }
      this.trimCache();
    };
    // A pass in flight may still write this session's KV: give its pages back once the pass is done.
    if (this.passInFlight) this.afterPass.push(finish);
    else finish();
  }

  /** Evicts idle pieces, least recently used first, while they hold more than `cachePages`. */
  private trimCache(): void {
    let cached = this.cachedPages;
    while (cached > this.cachePages) {
      const victim = this.evictionCandidate(new Set());
      if (victim === undefined) break;
      cached -= this.pagesOf(victim);
      this.dropPiece(victim);
    }
  }
}
