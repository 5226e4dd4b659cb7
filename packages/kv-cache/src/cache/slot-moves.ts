/**
 * Token KV that must be copied after a commit: for every `i`, K and V of slot `source[i]` go to slot `target[i]`
 * in every layer (slot = `page * pageSize + offset`). Sources and targets are disjoint, so the copies may run in
 * any order; they must run before the source pages are reused (deliver them to the backend right away).
 */
export interface SlotMoves {
  /** `[numMoves]` slots to read. */
  readonly source: Int32Array;
  /** `[numMoves]` slots to write. */
  readonly target: Int32Array;
}
