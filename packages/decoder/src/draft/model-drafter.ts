import { DisposedError, InvalidArgumentError } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import type { DecodingSession } from '../engine/decoding-session.js';
import type { SessionOpener } from '../engine/session-opener.js';
import type { DraftNode } from './draft-tree.js';
import type { Drafter, DraftRequest } from './drafter.js';

/** Options of {@link ModelDrafter}: the shape of its draft trees. */
export interface ModelDrafterOptions {
  /** Draft tokens per tree, the node budget (default 32). */
  readonly maxTokens?: number;
  /** Deepest draft path (default 8); also one draft-model pass per depth. */
  readonly maxDepth?: number;
  /** Candidates kept below each expanded node: the drafter's top-k (default 4). */
  readonly branching?: number;
  /** Nodes expanded per depth, the most probable paths first (default 4). */
  readonly width?: number;
  /**
   * Paths the drafter gives less than this probability (the product of its probabilities along the path)
   * are neither expanded nor proposed (default 0.01): a confident drafter drafts deep, an unsure one stops early.
   */
  readonly minProbability?: number;
}

/** A draft model: what a {@link ModelDrafter} needs of its engine. */
export interface DraftEngine extends SessionOpener {
  readonly model: { readonly config: { readonly vocabSize: number; readonly contextLength: number } };
}

interface Candidate {
  readonly parent: number;
  readonly token: number;
  /** Natural log of the drafter's probability of the whole path. */
  readonly logScore: number;
  readonly depth: number;
  /** The draft-model tree node holding this token once expanded. */
  node: number;
}

/** The `count` largest entries of a row (token ids, largest first, smaller id on ties). */
function topTokens(row: Float32Array, count: number): number[] {
  const best: number[] = [];
  for (let token = 0; token < row.length; token++) {
    const value = row[token]!;
    if (best.length === count && value <= row[best[count - 1]!]!) continue;
    let at = best.length;
    while (at > 0 && value > row[best[at - 1]!]!) at--;
    best.splice(at, 0, token);
    if (best.length > count) best.pop();
  }
  return best;
}

/**
 * A drafter backed by a model with the target's vocabulary: a smaller model of the same family, or the
 * target's own first layers (see {@link selfDraftCheckpoint}). It keeps the context's KV in a session of
 * its own engine between drafts (only the new tokens are computed) and grows a dynamic token tree, as
 * EAGLE-2 does: at each depth the `width` most probable paths so far (the product of the drafter's
 * probabilities) are expanded in one tree-attention pass of the draft model, each into its `branching`
 * most likely next tokens; then the `maxTokens` most probable nodes of all depths form the draft (a
 * node's probability never exceeds its parent's, so the chosen nodes form a tree). Where the drafter is
 * confident the tree goes deep and narrow; where it is not, wide and shallow.
 *
 * The draft pages stay in the draft engine's pool between drafts of one run; `reset()` (called when a
 * speculative run ends) gives them back.
 *
 * @example
 * ```ts
 * const drafter = new ModelDrafter(DecodingEngine.create(smallModel, { numPages: 128 }), { maxTokens: 32 });
 * const result = await runStrategy(speculativeDecode(engine, { prompt, maxTokens: 200, draft: drafter }));
 * ```
 */
export class ModelDrafter implements Drafter {
  readonly engine: DraftEngine;
  readonly vocabSize: number;
  readonly maxTokens: number;
  readonly maxDepth: number;
  readonly branching: number;
  readonly width: number;
  readonly minProbability: number;
  private session: DecodingSession | undefined;
  /** The context whose KV the session holds (its root), and the draft model's row after it. */
  private committed: number[] = [];
  private lastRow: Float32Array | undefined;
  private isDisposed = false;
  /** Drafts run one at a time (runs sharing a drafter take turns; its session follows one context at a time). */
  private queue: Promise<unknown> = Promise.resolve();
  /** Draft calls queued or running. */
  private pending = 0;

  /** @throws InvalidArgumentError for bad options. */
  constructor(engine: DraftEngine, options: ModelDrafterOptions = {}) {
    this.engine = engine;
    this.vocabSize = engine.model.config.vocabSize;
    this.maxTokens = assertInteger('maxTokens', options.maxTokens ?? 32, 1);
    this.maxDepth = assertInteger('maxDepth', options.maxDepth ?? 8, 1);
    this.branching = assertInteger('branching', options.branching ?? 4, 1);
    this.width = assertInteger('width', options.width ?? 4, 1);
    const minProbability = options.minProbability ?? 0.01;
    if (!(minProbability >= 0 && minProbability < 1)) {
      throw new InvalidArgumentError(`minProbability must be in [0, 1), got ${String(minProbability)}`, {
        argument: 'minProbability',
        expected: '[0, 1)',
        actual: minProbability,
      });
    }
    this.minProbability = minProbability;
  }

  /**
   * A draft tree continuing `context`, at most `request.maxDepth` deep. Calls are served one at a time, so
   * concurrent runs may share a drafter (each switch of context recomputes the context's KV).
   * @throws DisposedError after dispose().
   */
  draft(context: readonly number[], request: DraftRequest): Promise<DraftNode[]> {
    this.pending++;
    const result = this.queue.then(() => this.draftNow(context, request));
    this.queue = result.catch(() => undefined).finally(() => this.pending--);
    return result;
  }

  private async draftNow(context: readonly number[], request: DraftRequest): Promise<DraftNode[]> {
    if (this.isDisposed) throw new DisposedError('ModelDrafter');
    const contextLength = this.engine.model.config.contextLength;
    const depthLimit = Math.min(request.maxDepth, this.maxDepth, contextLength - context.length);
    if (depthLimit <= 0 || context.length === 0) return [];
    const rootRow = await this.follow(context);
    const session = this.session!;
    const tree = session.tree;
    const minLogScore = Math.log(this.minProbability);
    const candidates: Candidate[] = [];
    const addChildren = (parent: number, row: Float32Array, base: number, depth: number): void => {
      for (const token of topTokens(row, this.branching)) {
        const logScore = base + row[token]!;
        if (logScore >= minLogScore) candidates.push({ parent, token, logScore, depth, node: -1 });
      }
    };
    addChildren(-1, rootRow, 0, 1);
    try {
      for (let depth = 1; depth < depthLimit; depth++) {
        // Only nodes that can still make the budget are worth expanding.
        const ranked = candidates.map((candidate) => candidate.logScore).sort((a, b) => b - a);
        const cut = ranked[Math.min(this.maxTokens, ranked.length) - 1] ?? 0;
        const expand = candidates
          .map((candidate, index) => ({ candidate, index }))
          .filter(({ candidate }) => candidate.depth === depth && candidate.logScore >= cut)
          .sort((a, b) => b.candidate.logScore - a.candidate.logScore)
          .slice(0, this.width);
        if (expand.length === 0) break;
        const byParent = new Map<number, { candidate: Candidate; index: number }[]>();
        for (const entry of expand) {
          const parentNode =
            entry.candidate.parent < 0 ? session.root : candidates[entry.candidate.parent]!.node;
          const group = byParent.get(parentNode);
          if (group === undefined) byParent.set(parentNode, [entry]);
          else group.push(entry);
        }
        for (const [parentNode, entries] of byParent) {
          const children = tree.fork(parentNode, entries.length);
          entries.forEach((entry, index) => {
            entry.candidate.node = children[index]!;
            tree.append(children[index]!, entry.candidate.token);
          });
        }
        const evaluation = await session.evaluate();
        for (const { candidate, index } of expand) {
          addChildren(index, evaluation.row(candidate.node)!, candidate.logScore, depth + 1);
        }
      }
    } finally {
      // The draft's own nodes are not kept: the next draft starts from the accepted context.
      if (!session.released) session.pruneExcept([]);
    }
    // The budget's most probable nodes (a parent before its child on equal scores: shallower first).
    const chosen = candidates
      .map((candidate, index) => ({ candidate, index }))
      .sort((a, b) => b.candidate.logScore - a.candidate.logScore || a.candidate.depth - b.candidate.depth)
      .slice(0, this.maxTokens);
    const nodes = new Map<number, DraftNode>();
    const roots: DraftNode[] = [];
    // Shallower first, so every parent exists before its children; siblings most probable first.
    chosen.sort(
      (a, b) => a.candidate.depth - b.candidate.depth || b.candidate.logScore - a.candidate.logScore,
    );
    for (const { candidate, index } of chosen) {
      const node: DraftNode = { token: candidate.token, children: [] };
      const siblings = candidate.parent < 0 ? roots : nodes.get(candidate.parent)?.children;
      if (siblings === undefined) continue; // its parent fell outside the budget
      siblings.push(node);
      nodes.set(index, node);
    }
    return roots;
  }

  /**
   * Gives back the draft session's pages (the next draft computes its context again): at once when no
   * draft is running, else after the drafts queued so far (another run sharing the drafter).
   */
  reset(): void {
    if (this.pending > 0) {
      this.queue = this.queue.then(() => this.releaseSession());
      return;
    }
    this.releaseSession();
  }

  private releaseSession(): void {
    this.session?.release();
    this.session = undefined;
    this.committed = [];
    this.lastRow = undefined;
  }

  /** Releases the draft session (idempotent); the engine is the caller's. Use after dispose throws. */
  dispose(): void {
    this.releaseSession();
    this.isDisposed = true;
  }

  /** Brings the session's root to `context` and returns the draft model's log-probabilities after it. */
  private async follow(context: readonly number[]): Promise<Float32Array> {
    const committed = this.committed;
    let session = this.session;
    const extends_ =
      session !== undefined &&
      !session.released &&
      context.length >= committed.length &&
      committed.every((token, index) => context[index] === token);
    if (extends_ && context.length === committed.length && this.lastRow !== undefined) return this.lastRow;
    if (extends_ && session !== undefined) {
      session.tree.append(session.root, context.slice(committed.length));
    } else {
      this.releaseSession();
      session = this.engine.openSession(context);
      this.session = session;
    }
    this.committed = [];
    this.lastRow = undefined;
    const row = (await session.evaluate()).row(session.root)!.slice();
    this.committed = Array.from(context);
    this.lastRow = row;
    return row;
  }
}
