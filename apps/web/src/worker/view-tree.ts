import type { TreeEvaluation } from '@deft/decoder';
import type { TokenTree, TreeChange } from '@deft/tree';
import type { KeptSequence, ViewNode, ViewNodeState } from './worker-messages.js';

interface MutableViewNode {
  id: number;
  parent: number;
  tokens: number[];
  state: ViewNodeState;
  accepted: number;
  /** `[tokens.length]` natural-log probability of each token under the model; NaN where unknown (the prompt). */
  logProbabilities: number[];
  /** The token tree's id while the node is live, else -1. */
  treeId: number;
  /** The decoded tokens, and how many tokens they were decoded from (decoded again when that changes). */
  text: string;
  textLength: number;
}

/**
 * Every node a search ever made, kept after the token tree drops it: it follows the tree's changes, so a
 * pruned branch stays (marked `pruned`), and a speculative commit leaves the draft nodes it merged (marked
 * `accepted`, with how many tokens were) and the drafts it threw away (`rejected`). The log-probability of
 * an appended token comes from the last forward pass ({@link ViewTree.observe}) where that pass computed the
 * row before it; draft tokens, appended before their pass, get theirs when a kept sequence passes them.
 */
export class ViewTree {
  private readonly nodes: MutableViewNode[] = [];
  /** The view node of each live token-tree id. */
  private readonly byTreeId = new Map<number, MutableViewNode>();
  private readonly unsubscribe: () => void;
  /** Tokens of the prompt, at the start of the root. */
  private readonly promptLength: number;
  private readonly tree: TokenTree;
  private evaluation: TreeEvaluation | undefined;

  /** Starts from `tree` as it is (the prompt at its root) and follows its changes until {@link detach}. */
  constructor(tree: TokenTree) {
    this.tree = tree;
    this.promptLength = tree.tokenCount(tree.root);
    const copy = (treeId: number, parent: number) => {
      const node = this.add(parent, treeId);
      node.tokens.push(...tree.tokens(treeId));
      node.logProbabilities.push(...node.tokens.map(() => Number.NaN));
      for (const child of tree.children(treeId)) copy(child, node.id);
    };
    copy(tree.root, -1);
    this.unsubscribe = tree.on('change', (change) => this.apply(change));
  }

  /** Takes the log-probability rows of a forward pass over the tree, for the tokens appended after it. */
  observe(evaluation: TreeEvaluation): void {
    this.evaluation = evaluation;
  }

  /**
   * The log-probability of `token` at `position` of token-tree node `treeId`, from the row of the token
   * before it (the node's previous token, or its parent's last) when the last pass computed that row.
   */
  private logProbabilityOf(treeId: number, position: number, token: number): number {
    let row: Float32Array | undefined;
    if (position > 0) row = this.evaluation?.row(treeId, position - 1);
    else if (treeId !== this.tree.root) {
      const parent = this.tree.parent(treeId);
      row = this.evaluation?.row(parent, this.tree.tokenCount(parent) - 1);
    }
    return row?.[token] ?? Number.NaN;
  }

  /** Stops following the tree (idempotent). */
  detach(): void {
    this.unsubscribe();
  }

  /** Adds a node below `parent`, following token-tree node `treeId` when one is given. */
  private add(parent: number, treeId = -1): MutableViewNode {
    const node: MutableViewNode = {
      id: this.nodes.length,
      parent,
      tokens: [],
      state: 'live',
      accepted: 0,
      logProbabilities: [],
      treeId,
      text: '',
      textLength: 0,
    };
    this.nodes.push(node);
    if (treeId >= 0) this.byTreeId.set(treeId, node);
    return node;
  }

  private drop(treeId: number, state: ViewNodeState): MutableViewNode | undefined {
    const node = this.byTreeId.get(treeId);
    if (node === undefined) return undefined;
    this.byTreeId.delete(treeId);
    node.state = state;
    node.treeId = -1;
    return node;
  }

  private apply(change: TreeChange): void {
    switch (change.type) {
      case 'fork': {
        const parent = this.byTreeId.get(change.node)!;
        for (const child of change.children) this.add(parent.id, child);
        return;
      }
      case 'append': {
        const node = this.byTreeId.get(change.node)!;
        change.tokens.forEach((token, index) => {
          node.tokens.push(token);
          node.logProbabilities.push(this.logProbabilityOf(change.node, change.start + index, token));
        });
        return;
      }
      case 'prune':
        for (const removed of change.removed) this.drop(removed, 'pruned');
        return;
      case 'commit': {
        // The merged drafts keep their own nodes in the view; the tree's `into` goes on below the last one.
        const into = this.byTreeId.get(change.into)!;
        let last = into;
        change.merged.forEach((merged, index) => {
          const node = this.byTreeId.get(merged)!;
          node.accepted = change.acceptedCounts[index]!;
          last = node;
        });
        for (const removed of change.removed) {
          const node = this.byTreeId.get(removed)!;
          this.drop(removed, node.accepted > 0 ? 'accepted' : 'rejected');
        }
        if (last !== into) {
          into.treeId = -1;
          this.byTreeId.delete(change.into);
          this.add(last.id, change.into);
        }
        return;
      }
    }
  }

  /**
   * Finds where each sequence (generated tokens, the prompt excluded) ends, live nodes preferred, and gives
   * the nodes on its path its log-probabilities.
   */
  markKept(
    sequences: readonly { tokens: readonly number[]; logProbabilities: readonly number[]; score: number }[],
    decode: (tokens: readonly number[]) => string,
  ): KeptSequence[] {
    const children = new Map<number, MutableViewNode[]>();
    for (const node of this.nodes.slice(1)) {
      const list = children.get(node.parent) ?? [];
      list.push(node);
      children.set(node.parent, list);
    }
    const rank = (node: MutableViewNode) => (node.state === 'live' ? 0 : node.state === 'accepted' ? 1 : 2);
    for (const list of children.values()) list.sort((a, b) => rank(a) - rank(b));
    const kept: KeptSequence[] = [];
    for (const sequence of sequences) {
      const found = this.findPath(this.nodes[0]!, sequence.tokens, 0, children);
      if (found === undefined) continue;
      const path = found.path;
      // A sequence's last token was chosen but never run through the model, so the tree lacks it.
      if (found.end < sequence.tokens.length) {
        const tail = this.add(path.at(-1)!.id);
        tail.tokens.push(...sequence.tokens.slice(found.end));
        tail.logProbabilities.push(...tail.tokens.map(() => Number.NaN));
        path.push(tail);
      }
      // The sequence's own log-probabilities fill in what the passes did not give (draft tokens).
      let offset = 0;
      for (const node of path) {
        const first = node.id === 0 ? this.promptLength : 0;
        const count = Math.min(this.generatedTokens(node).length, sequence.tokens.length - offset);
        for (let index = 0; index < count; index++) {
          node.logProbabilities[first + index] = sequence.logProbabilities[offset + index]!;
        }
        offset += count;
      }
      const node = path.at(-1)!.id;
      kept.push({ tokens: sequence.tokens, text: decode(sequence.tokens), score: sequence.score, node });
    }
    return kept;
  }

  /**
   * A node's generated tokens as drawn: the root's after the prompt, an accepted draft's accepted ones.
   */
  private generatedTokens(node: MutableViewNode): number[] {
    if (node.id === 0) return node.tokens.slice(this.promptLength);
    return node.state === 'accepted' ? node.tokens.slice(0, node.accepted) : node.tokens;
  }

  /**
   * The longest path from `node` along `tokens[offset..]` (whole nodes, or part of the last where the tokens
   * end) and how far it got.
   */
  private findPath(
    node: MutableViewNode,
    tokens: readonly number[],
    offset: number,
    children: ReadonlyMap<number, MutableViewNode[]>,
  ): { path: MutableViewNode[]; end: number } | undefined {
    const own = this.generatedTokens(node);
    const count = Math.min(own.length, tokens.length - offset);
    for (let index = 0; index < count; index++) if (own[index] !== tokens[offset + index]) return undefined;
    let best = { path: [node], end: offset + count };
    if (count < own.length) return best;
    for (const child of children.get(node.id) ?? []) {
      if (best.end === tokens.length) break;
      const found = this.findPath(child, tokens, offset + count, children);
      if (found !== undefined && found.end > best.end) best = { path: [node, ...found.path], end: found.end };
    }
    return best;
  }

  /** The drawable nodes: text decoded, pages as the cache holds them now. */
  snapshot(decode: (tokens: readonly number[]) => string, pagesOf: (treeId: number) => number): ViewNode[] {
    return this.nodes.map((node) => {
      if (node.textLength !== node.tokens.length) {
        node.text = decode(node.tokens);
        node.textLength = node.tokens.length;
      }
      return {
        id: node.id,
        parent: node.parent,
        tokens: [...node.tokens],
        text: node.text,
        state: node.state,
        accepted: node.accepted,
        pages: node.treeId < 0 ? 0 : pagesOf(node.treeId),
        logProbabilities: [...node.logProbabilities],
      };
    });
  }
}
