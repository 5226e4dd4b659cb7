import type { PagedTreeView } from '@deft/core';

/**
 * Writes the KV slots of tokens `start .. end` of `node` into `target` from `offset` on.
 * Works a page at a time; a node's token `i` lives at `pages[pageIndptr[node] + floor(i / pageSize)] * pageSize + i % pageSize`.
 */
export function fillTokenSlots(
  view: PagedTreeView,
  node: number,
  start: number,
  end: number,
  target: Int32Array,
  offset: number,
): void {
  const { pageSize, pages } = view;
  const firstPage = view.pageIndptr[node]!;
  let token = start;
  let write = offset;
  while (token < end) {
    const pageIndex = (token / pageSize) | 0;
    const inPage = token - pageIndex * pageSize;
    const runEnd = Math.min(end, (pageIndex + 1) * pageSize);
    let slot = pages[firstPage + pageIndex]! * pageSize + inPage;
    for (; token < runEnd; token++) target[write++] = slot++;
  }
}
