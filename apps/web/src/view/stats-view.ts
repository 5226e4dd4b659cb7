import type { LiveStats } from '../worker/worker-messages.js';
import { formatBytes } from './format-bytes.js';

/** Fills the live figures beside the tree. */
export function renderStats(list: HTMLElement, stats: LiveStats): void {
  const saved = stats.sequenceKvBytes - stats.kvBytesRead;
  const ratio = stats.kvBytesRead > 0 ? stats.sequenceKvBytes / stats.kvBytesRead : 1;
  const rows: [string, string][] = [
    ['forward pass', String(stats.step)],
    ['tokens', `${stats.generatedTokens} (${stats.tokensPerSecond.toFixed(1)} tokens/s)`],
    ['KV read, tree attention', formatBytes(stats.kvBytesRead)],
    ['KV read, sequence attention', formatBytes(stats.sequenceKvBytes)],
    ['KV bytes saved', `${formatBytes(saved)} (${ratio.toFixed(2)}× less)`],
    ['pages in use', `${stats.pagesUsed} (${stats.pagesShared} shared)`],
    ['tree', `${stats.treeNodes} nodes, ${stats.leaves} leaves`],
  ];
  list.replaceChildren(
    ...rows.flatMap(([name, value]) => {
      const term = document.createElement('dt');
      term.textContent = name;
      const detail = document.createElement('dd');
      detail.textContent = value;
      return [term, detail];
    }),
  );
}
