/**
 * Splits page copies `source[i] -> target[i]` into batches that can each run as one parallel dispatch
 * while keeping the sequential meaning of the list: a pair starts a new batch when its source was
 * written earlier in the batch, or its target was read or written earlier in the batch. Pairs with
 * `source === target` do nothing and are dropped.
 *
 * @returns `[source, target]` pairs grouped in order.
 */
export function copyPageBatches(source: Int32Array, target: Int32Array): [number, number][][] {
  const batches: [number, number][][] = [];
  let current: [number, number][] = [];
  let read = new Set<number>();
  let written = new Set<number>();
  for (let index = 0; index < source.length; index++) {
    const from = source[index]!;
    const to = target[index]!;
    if (from === to) continue;
    if (written.has(from) || written.has(to) || read.has(to)) {
      batches.push(current);
      current = [];
      read = new Set();
      written = new Set();
    }
    current.push([from, to]);
    read.add(from);
    written.add(to);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
