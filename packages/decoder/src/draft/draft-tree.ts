/** A node of a draft token tree: a token and the draft tokens that may follow it. */
export interface DraftNode {
  readonly token: number;
  readonly children: DraftNode[];
}

/**
 * Merges candidate continuations into a trie (shared prefixes once), keeping at most `maxTokens` draft
 * tokens; continuations are taken in order, so list the most promising first.
 *
 * @example
 * ```ts
 * buildDraftTrie([[5, 6, 7], [5, 8]], 16); // 5 → (6 → 7, 8)
 * ```
 */
export function buildDraftTrie(
  continuations: readonly (readonly number[])[],
  maxTokens: number,
): DraftNode[] {
  const roots: DraftNode[] = [];
  let used = 0;
  for (const continuation of continuations) {
    let level = roots;
    for (const token of continuation) {
      let node = level.find((candidate) => candidate.token === token);
      if (node === undefined) {
        if (used >= maxTokens) break;
        node = { token, children: [] };
        level.push(node);
        used++;
      }
      level = node.children;
    }
  }
  return roots;
}

/** Number of tokens in a draft trie. */
export function draftTokenCount(nodes: readonly DraftNode[]): number {
  let count = 0;
  for (const node of nodes) count += 1 + draftTokenCount(node.children);
  return count;
}
