import type { TreeAttentionPlan } from '@deft/core';

/** Ints per execution chunk in {@link ExecutionSchedule.chunks}: see the field order there. */
export const EXEC_CHUNK_FIELDS = 8;
/** Ints per work unit in {@link ExecutionSchedule.units}. */
export const UNIT_FIELDS = 12;
/** Tokens per KV tile of the tensor-core kernel. */
export const TILE_TOKENS = 32;

/** Device facts and knobs the schedule is built for. */
export interface ScheduleOptions {
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** Multiprocessors of the device (132 on an H100 SXM). */
  readonly multiprocessors: number;
  /** CTAs per multiprocessor the balance aims for (default 2: fewer, longer units measured faster than 3 or 4). */
  readonly blocksPerMultiprocessor?: number;
  /** Cost of one 16-row query tile per token, relative to reading the token's K and V (default 0.2). */
  readonly queryTileCost?: number;
  /** Cost of writing and merging one query's partial state, in tokens read (default 13). */
  readonly partialCost?: number;
  /** Fixed cost of a work unit (start-up latency of a CTA), in tokens read (default 150). */
  readonly unitCost?: number;
  /** Smallest ring of KV tiles (default 3: two tiles in flight while one is computed). */
  readonly minRingStages?: number;
  /** Largest ring of KV tiles (default 3: 48 KB at head dim 128, so 4 CTAs fit a multiprocessor). */
  readonly maxResidentTiles?: number;
  /**
   * Most 16-row query tiles a work unit starts with (default 4: one pass of the CTA's four warps).
   * Rows beyond it go to further units that read the same KV from L2, rather than to further passes
   * of one CTA, which repeat its chain of dependent loads and force a whole-chunk resident ring.
   */
  readonly maxQueryTilesPerUnit?: number;
  /**
   * Largest merge work a CTA may take on in the fused merge, in rounds of four partial loads per warp
   * (default 2); above it a second launch merges, spread over the device.
   */
  readonly fusedMergeLimit?: number;
}

/**
 * How the backend executes a plan. Consecutive plan chunks with the same queries that are all fully
 * visible form a run; a chunk with a mask is a run alone. Each run is cut into pieces at plan-chunk
 * boundaries (execution chunks, each one partial state per query) and its rows into row ranges; a
 * work unit is one (piece, row range), run by one CTA per KV head. Pieces and row splits are chosen
 * greedily from a cost model so the units fill the device with few partial states.
 *
 * Execution chunk `e` is `chunks[8e .. 8e + 8)`:
 * `[tokenStart, numTokens, queryStart, numQueries, partialStart, maskOffset, fullyVisible, planChunk]`
 * (tokens index the plan's `tokenSlots`, queries the plan's `chunkQueries`, `maskOffset` the plan's
 * `mask`; the j-th query's state goes to execution slot `partialStart + j`).
 * Unit `u` is `units[12u .. 12u + 12)`: its execution chunk's first seven fields, then
 * `[rowStart, rowCount, execChunk, 0, 0]`, with row = query * group + head (one load per CTA).
 */
export interface ExecutionSchedule {
  readonly numExecChunks: number;
  /** `[numExecChunks, 8]` see above. */
  readonly chunks: Int32Array;
  readonly numUnits: number;
  /** `[numUnits, 12]`, the costliest first. */
  readonly units: Int32Array;
  readonly numExecPartials: number;
  /** `[numQueries + 1]` offsets into `queryPartials`. */
  readonly queryPartialIndptr: Int32Array;
  /** `[numExecPartials]` execution slots of each query, in chunk order (the merge order). */
  readonly queryPartials: Int32Array;
  /** Queries that see no token (their output is zero). */
  readonly emptyQueries: Int32Array;
  /** Queries with several partial states, merged after attention. */
  readonly mergeQueries: Int32Array;
  /** Whether the CTA completing a query's partials merges them (else a second launch does). */
  readonly fuseMerge: boolean;
  /** KV tiles of the longest unit that makes several passes over its tiles (a ring this deep keeps it resident). */
  readonly residentTiles: number;
  /** Largest KV slot the plan reads, `-1` when none. */
  readonly maxSlot: number;
}

interface Run {
  readonly firstChunk: number;
  readonly endChunk: number;
  readonly numQueries: number;
  readonly tokens: number;
  /** Whether every query of the run sees no other run (one piece then writes the output directly). */
  readonly sole: boolean;
  pieces: number;
  rowSplits: number;
  /** Plan-chunk boundaries of the current pieces: `[pieces + 1]`. */
  cuts: number[];
  cost: number;
  /** Position in the run list: breaks cost ties so the schedule is deterministic. */
  readonly index: number;
}

/** A max-heap of runs by cost (ties: the earlier run first). */
class RunHeap {
  readonly #items: Run[];

  constructor(runs: readonly Run[]) {
    this.#items = [];
    for (const run of runs) this.push(run);
  }

  #before(a: Run, b: Run): boolean {
    return a.cost > b.cost || (a.cost === b.cost && a.index < b.index);
  }

  peek(): Run | undefined {
    return this.#items[0];
  }

  push(run: Run): void {
    const items = this.#items;
    items.push(run);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.#before(items[index]!, items[parent]!)) break;
      [items[index], items[parent]] = [items[parent]!, items[index]!];
      index = parent;
    }
  }

  pop(): void {
    const items = this.#items;
    const last = items.pop()!;
    if (items.length === 0) return;
    items[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let top = index;
      if (left < items.length && this.#before(items[left]!, items[top]!)) top = left;
      if (right < items.length && this.#before(items[right]!, items[top]!)) top = right;
      if (top === index) break;
      [items[index], items[top]] = [items[top]!, items[index]!];
      index = top;
    }
  }
}

function sameQueries(plan: TreeAttentionPlan, a: number, b: number): boolean {
  const startA = plan.chunkQueryIndptr[a]!;
  const startB = plan.chunkQueryIndptr[b]!;
  const length = plan.chunkQueryIndptr[a + 1]! - startA;
  if (plan.chunkQueryIndptr[b + 1]! - startB !== length) return false;
  for (let index = 0; index < length; index++) {
    if (plan.chunkQueries[startA + index] !== plan.chunkQueries[startB + index]) return false;
  }
  return true;
}

/** Cuts plan chunks `[first, end)` into `pieces` runs of near-equal tokens (at chunk boundaries). */
function cutRun(plan: TreeAttentionPlan, first: number, end: number, pieces: number): number[] {
  const indptr = plan.chunkTokenIndptr;
  const start = indptr[first]!;
  const total = indptr[end]! - start;
  const cuts = [first];
  let chunk = first;
  for (let piece = 1; piece < pieces; piece++) {
    const goal = start + (total * piece) / pieces;
    // Advance to the boundary nearest the goal, leaving at least one chunk per remaining piece.
    const limit = end - (pieces - piece);
    let next = Math.max(chunk + 1, cuts[cuts.length - 1]! + 1);
    while (next < limit && Math.abs(indptr[next + 1]! - goal) <= Math.abs(indptr[next]! - goal)) next++;
    cuts.push(next);
    chunk = next;
  }
  cuts.push(end);
  return cuts;
}

/**
 * Builds the execution schedule of a validated plan for a device.
 *
 * @param plan A plan that passed `validatePlan`.
 * @param options The attention shape's heads and the device's multiprocessors (see {@link ScheduleOptions}).
 * @returns The schedule (see {@link ExecutionSchedule}); deterministic for the same inputs.
 * @example
 * ```ts
 * const schedule = buildSchedule(plan, { numHeads: 32, numKvHeads: 8, multiprocessors: 132 });
 * ```
 */
export function buildSchedule(plan: TreeAttentionPlan, options: ScheduleOptions): ExecutionSchedule {
  const group = options.numHeads / options.numKvHeads;
  const queryTileCost = options.queryTileCost ?? 0.2;
  const partialCost = options.partialCost ?? 13;
  const blocks = Math.max(1, options.multiprocessors) * (options.blocksPerMultiprocessor ?? 2);
  const maxResidentTiles = options.maxResidentTiles ?? 3;
  const fixedUnitCost = options.unitCost ?? 150;
  const minRingStages = options.minRingStages ?? 3;
  const maxQueriesPerUnit = Math.max(1, Math.floor(((options.maxQueryTilesPerUnit ?? 4) * 16) / group));
  const { numChunks, numQueries } = plan;

  // Plan partials per query: a query all of whose chunks lie in one run needs no partial state.
  const planPartials = new Int32Array(numQueries);
  for (let query = 0; query < numQueries; query++) {
    planPartials[query] = plan.queryPartialIndptr[query + 1]! - plan.queryPartialIndptr[query]!;
  }

  const runs: Run[] = [];
  for (let chunk = 0; chunk < numChunks; ) {
    let end = chunk + 1;
    if (plan.chunkFullyVisible[chunk] === 1) {
      while (end < numChunks && plan.chunkFullyVisible[end] === 1 && sameQueries(plan, chunk, end)) end++;
    }
    const queryStart = plan.chunkQueryIndptr[chunk]!;
    const count = plan.chunkQueryIndptr[chunk + 1]! - queryStart;
    let sole = true;
    for (let index = 0; index < count && sole; index++) {
      if (planPartials[plan.chunkQueries[queryStart + index]!] !== end - chunk) sole = false;
    }
    if (count > 0) {
      runs.push({
        firstChunk: chunk,
        endChunk: end,
        numQueries: count,
        tokens: plan.chunkTokenIndptr[end]! - plan.chunkTokenIndptr[chunk]!,
        sole,
        pieces: 1,
        rowSplits: Math.ceil(count / maxQueriesPerUnit),
        cuts: [chunk, end],
        cost: 0,
        index: runs.length,
      });
    }
    chunk = end;
  }

  const unitCost = (run: Run, cuts: number[], rowSplits: number): number => {
    let longest = 0;
    for (let piece = 0; piece + 1 < cuts.length; piece++) {
      longest = Math.max(
        longest,
        plan.chunkTokenIndptr[cuts[piece + 1]!]! - plan.chunkTokenIndptr[cuts[piece]!]!,
      );
    }
    const queries = Math.ceil(run.numQueries / rowSplits);
    const queryTiles = Math.ceil((queries * group) / 16);
    const partials = run.sole && cuts.length === 2 ? 0 : queries * partialCost;
    return longest * (1 + queryTileCost * queryTiles) + partials + fixedUnitCost;
  };

  let totalCost = 0;
  for (const run of runs) {
    run.cost = unitCost(run, run.cuts, run.rowSplits);
    totalCost += run.cost * run.rowSplits;
  }
  const unitSlots = Math.max(1, Math.floor(blocks / options.numKvHeads));
  const maxUnits = unitSlots * 16;
  let numUnits = 0;
  for (const run of runs) numUnits += run.rowSplits;
  const initialUnits = numUnits;

  // Greedy: split the costliest run (more pieces, or more row ranges) while it is above the target.
  const heap = new RunHeap(runs);
  for (;;) {
    const worst = heap.peek();
    // Balance target: the total cost (start-up costs of the current units included) over the slots.
    const targetCost = (totalCost + (numUnits - initialUnits) * fixedUnitCost) / unitSlots;
    if (worst === undefined || worst.cost <= targetCost || numUnits >= maxUnits) break;
    const chunks = worst.endChunk - worst.firstChunk;
    let best: { cost: number; pieces: number; rowSplits: number; cuts: number[] } | undefined;
    if (worst.rowSplits < worst.numQueries) {
      const rowSplits = Math.min(worst.numQueries, worst.rowSplits * 2);
      best = {
        cost: unitCost(worst, worst.cuts, rowSplits),
        pieces: worst.pieces,
        rowSplits,
        cuts: worst.cuts,
      };
    }
    if (worst.pieces < chunks) {
      const pieces = Math.min(chunks, worst.pieces * 2);
      const cuts = cutRun(plan, worst.firstChunk, worst.endChunk, pieces);
      const cost = unitCost(worst, cuts, worst.rowSplits);
      if (best === undefined || cost < best.cost) best = { cost, pieces, rowSplits: worst.rowSplits, cuts };
    }
    heap.pop();
    if (best === undefined || best.cost >= worst.cost * 0.95) continue; // cannot improve: leave it out of the heap
    numUnits += best.pieces * best.rowSplits - worst.pieces * worst.rowSplits;
    worst.pieces = best.pieces;
    worst.rowSplits = best.rowSplits;
    worst.cuts = best.cuts;
    worst.cost = best.cost;
    heap.push(worst);
  }

  // Execution chunks, in plan order, and their units.
  let numExecChunks = 0;
  for (const run of runs) numExecChunks += run.pieces;
  const chunks = new Int32Array(numExecChunks * EXEC_CHUNK_FIELDS);
  const unitList: { fields: number[]; cost: number; order: number }[] = [];
  let execChunk = 0;
  let partialStart = 0;
  let residentTiles = minRingStages;
  for (const run of runs) {
    const queryStart = plan.chunkQueryIndptr[run.firstChunk]!;
    for (let piece = 0; piece < run.pieces; piece++) {
      const first = run.cuts[piece]!;
      const end = run.cuts[piece + 1]!;
      const tokenStart = plan.chunkTokenIndptr[first]!;
      const numTokens = plan.chunkTokenIndptr[end]! - tokenStart;
      const base = execChunk * EXEC_CHUNK_FIELDS;
      chunks[base] = tokenStart;
      chunks[base + 1] = numTokens;
      chunks[base + 2] = queryStart;
      chunks[base + 3] = run.numQueries;
      chunks[base + 4] = partialStart;
      chunks[base + 5] = plan.chunkMaskOffset[first]!;
      chunks[base + 6] = plan.chunkFullyVisible[first]!;
      chunks[base + 7] = first;
      for (let split = 0; split < run.rowSplits; split++) {
        const firstQuery = Math.floor((run.numQueries * split) / run.rowSplits);
        const endQuery = Math.floor((run.numQueries * (split + 1)) / run.rowSplits);
        if (endQuery === firstQuery) continue;
        const unitRows = (endQuery - firstQuery) * group;
        const queryTiles = Math.ceil(unitRows / 16);
        if (queryTiles > 4) residentTiles = Math.max(residentTiles, Math.ceil(numTokens / TILE_TOKENS));
        unitList.push({
          fields: [
            tokenStart,
            numTokens,
            queryStart,
            run.numQueries,
            partialStart,
            plan.chunkMaskOffset[first]!,
            plan.chunkFullyVisible[first]!,
            firstQuery * group,
            unitRows,
            execChunk,
            0,
            0,
          ],
          cost: numTokens * (1 + queryTileCost * queryTiles),
          order: unitList.length,
        });
      }
      partialStart += run.numQueries;
      execChunk++;
    }
  }
  unitList.sort((a, b) => b.cost - a.cost || a.order - b.order);
  const units = new Int32Array(unitList.length * UNIT_FIELDS);
  unitList.forEach((unit, index) => {
    units.set(unit.fields, index * UNIT_FIELDS);
  });

  // Per-query CSR over execution slots, in execution-chunk order.
  const queryPartialIndptr = new Int32Array(numQueries + 1);
  for (let chunk = 0; chunk < numExecChunks; chunk++) {
    const base = chunk * EXEC_CHUNK_FIELDS;
    for (let index = 0; index < chunks[base + 3]!; index++) {
      queryPartialIndptr[plan.chunkQueries[chunks[base + 2]! + index]! + 1]!++;
    }
  }
  for (let query = 0; query < numQueries; query++) {
    queryPartialIndptr[query + 1]! += queryPartialIndptr[query]!;
  }
  const queryPartials = new Int32Array(partialStart);
  const cursor = queryPartialIndptr.slice(0, numQueries);
  for (let chunk = 0; chunk < numExecChunks; chunk++) {
    const base = chunk * EXEC_CHUNK_FIELDS;
    for (let index = 0; index < chunks[base + 3]!; index++) {
      const query = plan.chunkQueries[chunks[base + 2]! + index]!;
      queryPartials[cursor[query]!++] = chunks[base + 4]! + index;
    }
  }
  const empty: number[] = [];
  const merged: number[] = [];
  for (let query = 0; query < numQueries; query++) {
    const count = queryPartialIndptr[query + 1]! - queryPartialIndptr[query]!;
    if (count === 0) empty.push(query);
    else if (count > 1) merged.push(query);
  }
  // Fused merge only when no CTA can end up with much merge work: the last CTA of a query merges all of it.
  let worstMerge = 0;
  for (let unit = 0; unit < unitList.length; unit++) {
    const fields = unitList[unit]!.fields;
    const rowStart = fields[7]!;
    const rowCount = fields[8]!;
    const base = fields[9]! * EXEC_CHUNK_FIELDS;
    let work = 0;
    for (let index = rowStart / group; index < (rowStart + rowCount) / group; index++) {
      const query = plan.chunkQueries[chunks[base + 2]! + index]!;
      const count = queryPartialIndptr[query + 1]! - queryPartialIndptr[query]!;
      if (count > 1) work += group * (1 + count / 4);
    }
    worstMerge = Math.max(worstMerge, work / 4);
  }
  let maxSlot = -1;
  for (const slot of plan.tokenSlots) if (slot > maxSlot) maxSlot = slot;

  return {
    numExecChunks,
    chunks,
    numUnits: unitList.length,
    units,
    numExecPartials: partialStart,
    queryPartialIndptr,
    queryPartials,
    emptyQueries: Int32Array.from(empty),
    mergeQueries: Int32Array.from(merged),
    fuseMerge: worstMerge <= (options.fusedMergeLimit ?? 2),
    residentTiles: Math.max(minRingStages, Math.min(residentTiles, maxResidentTiles)),
    maxSlot,
  };
}
