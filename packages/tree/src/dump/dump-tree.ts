/** What {@link dumpTree} reads of a tree (a `TokenTree` is one). */
export interface DumpableTree {
  readonly root: number;
  dfsOrder(): Int32Array;
  tokens(node: number): Int32Array;
  children(node: number): readonly number[];
}

/** Options of `TokenTree.dump`. */
export interface DumpTreeOptions {
  /** Tokens shown per node before `…` (default 8). */
  readonly maxTokens?: number;
  /** Nodes shown before the dump is cut (default 1000). */
  readonly maxNodes?: number;
}

/**
 * Draws a token tree, one line per node in depth-first order:
 * `#id (n tokens) t0 t1 …`, indented with box-drawing characters.
 */
export function dumpTree(tree: DumpableTree, options: DumpTreeOptions = {}): string {
  const maxTokens = options.maxTokens ?? 8;
  const maxNodes = options.maxNodes ?? 1000;
  const lines: string[] = [];
  const order = tree.dfsOrder();
  const describe = (node: number): string => {
    const tokens = tree.tokens(node);
    const shown = Array.from(tokens.subarray(0, maxTokens)).join(' ');
    const more = tokens.length > maxTokens ? ' …' : '';
    const noun = tokens.length === 1 ? 'token' : 'tokens';
    return `#${node} (${tokens.length} ${noun})${shown.length > 0 ? ` ${shown}` : ''}${more}`;
  };
  lines.push(describe(tree.root));
  // Each entry carries "<prefix of its own line>|<prefix for its children's lines>".
  const walk: { node: number; prefix: string }[] = [];
  const pushChildren = (node: number, prefix: string): void => {
    const children = tree.children(node);
    for (let index = children.length - 1; index >= 0; index--) {
      const last = index === children.length - 1;
      walk.push({
        node: children[index]!,
        prefix: `${prefix}${last ? '└─ ' : '├─ '}|${prefix}${last ? '   ' : '│  '}`,
      });
    }
  };
  pushChildren(tree.root, '');
  while (walk.length > 0) {
    if (lines.length >= maxNodes) {
      lines.push(`… (${order.length - lines.length} more nodes)`);
      break;
    }
    const { node, prefix } = walk.pop()!;
    const separator = prefix.indexOf('|');
    lines.push(`${prefix.slice(0, separator)}${describe(node)}`);
    pushChildren(node, prefix.slice(separator + 1));
  }
  return lines.join('\n');
}
