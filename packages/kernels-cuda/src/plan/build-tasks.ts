import type { TreeAttentionPlan } from '@deft/core';

/** Ints per task in {@link TaskSchedule.tasks}: `[slotStart, numTokens, rowStart, rowCount]`. */
export const TASK_FIELDS = 4;
/** Ints per task row in {@link TaskSchedule.taskRows}: `[qRow, partialRow]`. */
export const TASK_ROW_FIELDS = 2;
/** Tokens per KV tile of the task kernel (one barrier per tile). */
export const TASK_TILE_TOKENS = 64;
/** Rows (query x head of one KV head's group) of one task: one 16-row query tile per warp, four warps. */
export const TASK_MAX_ROWS = 64;

/** Device facts and knobs the task schedule is built for. */
export interface TaskScheduleOptions {
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** Multiprocessors of the device (132 on an H100 / H200 SXM). */
  readonly multiprocessors: number;
  /** CTAs of the task kernel resident per multiprocessor (default 2: three 32 KB stages each). */
  readonly blocksPerMultiprocessor?: number;
  /** Cost of one 16-row query tile per token, relative to reading the token's K and V (default 0.15). */
  readonly queryTileCost?: number;
  /** Fixed cost of a task (start-up latency of a CTA), in tokens read (default 96). */
  readonly taskCost?: number;
  /**
   * Cost of one row's partial state (written by the task, read by the merge), in tokens read
   * (default 2: 4 * headDim bytes written and read against 2 * headDim fp16 bytes of K and V per token).
   */
  readonly partialCost?: number;
  /**
   * Largest group (a set of tokens seen by the same queries) computed in the merge kernel instead of
   * as a task: at most this many tokens (default 16) ...
   */
  readonly suffixTokens?: number;
  /** ... and at most this many rows (queries x group, default 16). */
  readonly suffixRows?: number;
}

/**
 * A mask-free execution of a plan. The plan's segments (runs of tokens that every query of a chunk
 * either sees or does not) are grouped by their exact set of queries, so every query of a group sees
 * every token of it: no mask anywhere. Small groups (speculative leaves, a draft tree's private
 * ancestors) become per-query suffixes, computed by the merge kernel on CUDA cores; every other group
 * becomes tasks of at most {@link TASK_MAX_ROWS} rows (row = query-in-group * group + head-in-group)
 * by a range of whole 64-token tiles of the group's tokens, the number of KV splits chosen from a
 * cost model so that about one wave of CTAs (one per task and KV head) finishes together.
 *
 * Task `t` is `tasks[4t .. 4t + 4)`: `[slotStart, numTokens, rowStart, rowCount]`; its tokens are
 * `taskSlots[slotStart ..< slotStart + numTokens]`, its rows `taskRows[2 * (rowStart ..< rowStart + rowCount)]`.
 * Row entry `[qRow, partialRow]`: for KV head `h`, the row reads `q[(qRow + h * group) * headDim ..]`
 * and writes the output at the same offset when `partialRow < 0` (the query's only state), else
 * `partialO[(partialRow + h * group) * headDim ..]` and `partialLse[partialRow + h * group]` (base 2).
 * Tasks are ordered costliest first (deterministic), so the largest start in the first wave.
 */
export interface TaskSchedule {
  /** Groups of tokens with one set of queries (suffix groups included). */
  readonly numGroups: number;
  readonly numTasks: number;
  /** `[numTasks, 4]` see above. */
  readonly tasks: Int32Array;
  /** `[numTaskSlots]` KV slot of each task token, each group's tokens contiguous. */
  readonly taskSlots: Int32Array;
  /** `[numTaskRows, 2]` see above. */
  readonly taskRows: Int32Array;
  /** Partial-state slots (each `numHeads` rows of `headDim` floats and one lse per head). */
  readonly numPartials: number;
  /** `[numQueries + 1]` offsets into `queryPartials`. */
  readonly queryPartialIndptr: Int32Array;
  /** Partial slots of each query, in task-creation order (the merge order). */
  readonly queryPartials: Int32Array;
  /** `[numQueries + 1]` offsets into `suffixSlots`. */
  readonly suffixIndptr: Int32Array;
  /** KV slots each query attends to in the merge kernel (its small private groups). */
  readonly suffixSlots: Int32Array;
  /** Queries the merge kernel writes: several partials, a suffix, or nothing at all (output zero). */
  readonly mergeQueries: Int32Array;
  /** Largest KV slot read, `-1` when none. */
  readonly maxSlot: number;
}

interface Group {
  readonly queries: Int32Array;
  /** Token ranges of the plan's `tokenSlots` this group reads: `[start, end)` pairs, in plan order. */
  readonly ranges: number[];
  tokens: number;
}

/** Adds plan tokens `[start, end)` to a group, extending its last range when they follow it. */
function addTokens(target: Group, start: number, end: number): void {
  const ranges = target.ranges;
  if (ranges.length > 0 && ranges[ranges.length - 1] === start) ranges[ranges.length - 1] = end;
  else ranges.push(start, end);
  target.tokens += end - start;
}

function hashQueries(queries: ArrayLike<number>): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < queries.length; index++) hash = Math.imul(hash ^ queries[index]!, 0x01000193);
  return hash >>> 0;
}

function sameQueries(a: Int32Array, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

interface TaskDraft {
  readonly fields: [number, number, number, number];
  readonly cost: number;
  readonly order: number;
}

/**
 * Builds the mask-free task schedule of a validated plan for a device.
 *
 * @param plan A plan that passed `validatePlan` (any strategy).
 * @param options The attention shape's heads and the device's multiprocessors.
 * @returns The schedule (see {@link TaskSchedule}); deterministic for the same inputs.
 * @example
 * ```ts
 * const schedule = buildTaskSchedule(plan, { numHeads: 32, numKvHeads: 8, multiprocessors: 132 });
 * ```
 */
export function buildTaskSchedule(plan: TreeAttentionPlan, options: TaskScheduleOptions): TaskSchedule {
  const group = options.numHeads / options.numKvHeads;
  const numHeads = options.numHeads;
  const queryTileCost = options.queryTileCost ?? 0.15;
  const taskCost = options.taskCost ?? 96;
  const partialCost = options.partialCost ?? 2;
  const suffixTokens = options.suffixTokens ?? 16;
  const suffixRows = options.suffixRows ?? 16;
  const blocks = Math.max(1, options.multiprocessors) * (options.blocksPerMultiprocessor ?? 2);
  const slotsPerKvHead = Math.max(1, Math.floor(blocks / options.numKvHeads));
  const { numChunks, numQueries } = plan;

  // 1. Groups: every segment's tokens go to the group of its exact query set (first-seen order).
  const groupsByHash = new Map<number, Group[]>();
  const groups: Group[] = [];
  const groupOf = (queries: ArrayLike<number>): Group => {
    const hash = hashQueries(queries);
    let bucket = groupsByHash.get(hash);
    if (bucket === undefined) {
      bucket = [];
      groupsByHash.set(hash, bucket);
    }
    for (const candidate of bucket) if (sameQueries(candidate.queries, queries)) return candidate;
    const created: Group = { queries: Int32Array.from(queries), ranges: [], tokens: 0 };
    bucket.push(created);
    groups.push(created);
    return created;
  };
  let previousFull: { start: number; end: number; group: Group } | undefined;
  for (let chunk = 0; chunk < numChunks; chunk++) {
    const queryStart = plan.chunkQueryIndptr[chunk]!;
    const queryEnd = plan.chunkQueryIndptr[chunk + 1]!;
    const tokenStart = plan.chunkTokenIndptr[chunk]!;
    const tokenEnd = plan.chunkTokenIndptr[chunk + 1]!;
    if (queryEnd === queryStart || tokenEnd === tokenStart) continue;
    const chunkQueries = plan.chunkQueries.subarray(queryStart, queryEnd);
    if (plan.chunkFullyVisible[chunk] === 1) {
      let target: Group;
      if (
        previousFull !== undefined &&
        previousFull.end - previousFull.start === queryEnd - queryStart &&
        sameRange(plan.chunkQueries, previousFull.start, queryStart, queryEnd - queryStart)
      ) {
        target = previousFull.group;
      } else {
        target = groupOf(chunkQueries);
      }
      previousFull = { start: queryStart, end: queryEnd, group: target };
      addTokens(target, tokenStart, tokenEnd);
      continue;
    }
    const words = Math.ceil((queryEnd - queryStart) / 32);
    const maskOffset = plan.chunkMaskOffset[chunk]!;
    const segmentGroups: (Group | null | undefined)[] = [];
    for (let token = tokenStart; token < tokenEnd; token++) {
      const segment = plan.tokenSegments[token]!;
      let target = segmentGroups[segment];
      if (target === undefined) {
        const seen: number[] = [];
        for (let index = 0; index < queryEnd - queryStart; index++) {
          const word = plan.mask[maskOffset + segment * words + (index >> 5)]!;
          if (((word >>> (index & 31)) & 1) === 1) seen.push(chunkQueries[index]!);
        }
        target = seen.length === 0 ? null : groupOf(seen);
        segmentGroups[segment] = target;
      }
      if (target !== null) addTokens(target, token, token + 1);
    }
  }

  // 2. Suffix groups go to their queries' suffix lists; the others are cut into row blocks and KV splits.
  const suffixCounts = new Int32Array(numQueries);
  const partialCounts = new Int32Array(numQueries);
  const isSuffix = groups.map(
    (candidate) => candidate.tokens <= suffixTokens && candidate.queries.length * group <= suffixRows,
  );
  interface Blocked {
    readonly group: Group;
    readonly blockTiles: number[];
    readonly tiles: number;
    /** Cost of the group's costliest row block over all its tokens (a split divides it). */
    readonly worst: number;
    splits: number;
  }
  const blocked: Blocked[] = [];
  let totalCost = 0;
  groups.forEach((candidate, index) => {
    if (isSuffix[index]) {
      for (const query of candidate.queries) suffixCounts[query]! += candidate.tokens;
      return;
    }
    const rowTiles = Math.ceil((candidate.queries.length * group) / 16);
    const numBlocks = Math.ceil(rowTiles / (TASK_MAX_ROWS / 16));
    const blockTiles: number[] = [];
    for (let block = 0; block < numBlocks; block++) {
      blockTiles.push(
        Math.floor((rowTiles * (block + 1)) / numBlocks) - Math.floor((rowTiles * block) / numBlocks),
      );
    }
    const tokens = candidate.tokens;
    let worst = 0;
    for (const tiles of blockTiles) {
      totalCost += tokens * (1 + queryTileCost * tiles) + taskCost;
      worst = Math.max(worst, tokens * (1 + queryTileCost * tiles));
    }
    blocked.push({
      group: candidate,
      blockTiles,
      tiles: Math.ceil(tokens / TASK_TILE_TOKENS),
      worst,
      splits: 1,
    });
  });
  // One wave: each task's cost near the total over the CTA slots of one KV head. A split adds a
  // task's fixed cost and its rows' partial states; two passes, as the splits change the total.
  const rowsOf = (tiles: number, entry: Blocked, block: number): number =>
    Math.min(tiles * 16, entry.group.queries.length * group - tilesBefore(entry, block) * 16);
  for (let pass = 0; pass < 2; pass++) {
    const target = Math.max(totalCost / slotsPerKvHead, taskCost * 2);
    let nextTotal = 0;
    for (const entry of blocked) {
      const tokens = entry.group.tokens;
      entry.splits = Math.max(1, Math.min(entry.tiles, Math.ceil(entry.worst / target)));
      entry.blockTiles.forEach((tiles, block) => {
        const partials = entry.splits > 1 ? rowsOf(tiles, entry, block) * partialCost * entry.splits : 0;
        nextTotal += tokens * (1 + queryTileCost * tiles) + taskCost * entry.splits + partials;
      });
    }
    totalCost = nextTotal;
  }
  fitWaves(blocked, options.numKvHeads, blocks, taskCost);
  for (const entry of blocked) {
    for (const query of entry.group.queries) partialCounts[query]! += entry.splits;
  }
  const direct = (query: number): boolean => partialCounts[query] === 1 && suffixCounts[query] === 0;

  // 3. Tasks, rows and partial slots, in group order.
  let numTaskSlots = 0;
  for (const entry of blocked) numTaskSlots += entry.group.tokens;
  const taskSlots = new Int32Array(numTaskSlots);
  let slotCursor = 0;
  const copyRanges = (target: Int32Array, at: number, ranges: readonly number[]): number => {
    let cursor = at;
    for (let index = 0; index < ranges.length; index += 2) {
      target.set(plan.tokenSlots.subarray(ranges[index]!, ranges[index + 1]!), cursor);
      cursor += ranges[index + 1]! - ranges[index]!;
    }
    return cursor;
  };
  const taskRows: number[] = [];
  const drafts: TaskDraft[] = [];
  const partialLists: number[][] = Array.from({ length: numQueries }, () => []);
  let numPartials = 0;
  for (const entry of blocked) {
    const { queries, tokens } = entry.group;
    const slotStart = slotCursor;
    slotCursor = copyRanges(taskSlots, slotCursor, entry.group.ranges);
    const rows = queries.length * group;
    for (let split = 0; split < entry.splits; split++) {
      const firstTile = Math.floor((entry.tiles * split) / entry.splits);
      const endTile = Math.floor((entry.tiles * (split + 1)) / entry.splits);
      const firstToken = firstTile * TASK_TILE_TOKENS;
      const numTokens = Math.min(tokens, endTile * TASK_TILE_TOKENS) - firstToken;
      const partialOf = new Int32Array(queries.length);
      queries.forEach((query, index) => {
        if (direct(query)) {
          partialOf[index] = -1;
        } else {
          partialOf[index] = numPartials;
          partialLists[query]!.push(numPartials++);
        }
      });
      let firstRow = 0;
      for (const tiles of entry.blockTiles) {
        const endRow = Math.min(rows, firstRow + tiles * 16);
        const rowStart = taskRows.length / TASK_ROW_FIELDS;
        for (let row = firstRow; row < endRow; row++) {
          const index = Math.floor(row / group);
          const head = row - index * group;
          const partial = partialOf[index]!;
          taskRows.push(queries[index]! * numHeads + head, partial < 0 ? -1 : partial * numHeads + head);
        }
        drafts.push({
          fields: [slotStart + firstToken, numTokens, rowStart, endRow - firstRow],
          cost: numTokens * (1 + queryTileCost * tiles),
          order: drafts.length,
        });
        firstRow = endRow;
      }
    }
  }
  drafts.sort((a, b) => b.cost - a.cost || a.order - b.order);
  const tasks = new Int32Array(drafts.length * TASK_FIELDS);
  drafts.forEach((draft, index) => {
    tasks.set(draft.fields, index * TASK_FIELDS);
  });

  // 4. Per-query CSR of partials and suffixes, and the queries the merge kernel writes.
  const queryPartialIndptr = new Int32Array(numQueries + 1);
  const suffixIndptr = new Int32Array(numQueries + 1);
  for (let query = 0; query < numQueries; query++) {
    queryPartialIndptr[query + 1] = queryPartialIndptr[query]! + partialLists[query]!.length;
    suffixIndptr[query + 1] = suffixIndptr[query]! + suffixCounts[query]!;
  }
  const queryPartials = new Int32Array(numPartials);
  for (let query = 0; query < numQueries; query++) {
    queryPartials.set(partialLists[query]!, queryPartialIndptr[query]!);
  }
  const suffixSlots = new Int32Array(suffixIndptr[numQueries]!);
  const suffixCursor = suffixIndptr.slice(0, numQueries);
  groups.forEach((candidate, index) => {
    if (!isSuffix[index]) return;
    for (const query of candidate.queries) {
      suffixCursor[query] = copyRanges(suffixSlots, suffixCursor[query]!, candidate.ranges);
    }
  });
  const mergeQueries: number[] = [];
  for (let query = 0; query < numQueries; query++) if (!direct(query)) mergeQueries.push(query);
  let maxSlot = -1;
  for (const slot of taskSlots) if (slot > maxSlot) maxSlot = slot;
  for (const slot of suffixSlots) if (slot > maxSlot) maxSlot = slot;

  return {
    numGroups: groups.length,
    numTasks: drafts.length,
    tasks,
    taskSlots,
    taskRows: Int32Array.from(taskRows),
    numPartials,
    queryPartialIndptr,
    queryPartials,
    suffixIndptr,
    suffixSlots,
    mergeQueries: Int32Array.from(mergeQueries),
    maxSlot,
  };
}

/**
 * Wave fit: a grid a little over a whole number of waves of CTA slots pays one more wave of a task's
 * cost (few-shot-b20 on an H200: 288 CTAs for 264 slots). When merging KV splits brings the CTAs down
 * to one wave fewer, and that many waves of the then costliest task cost less than the waves before,
 * the splits are merged: each step takes one split from the group whose tasks stay cheapest.
 */
function fitWaves(
  blocked: { readonly blockTiles: readonly number[]; readonly worst: number; splits: number }[],
  numKvHeads: number,
  slots: number,
  taskCost: number,
): void {
  const ctas = (): number => {
    let count = 0;
    for (const entry of blocked) count += entry.splits * entry.blockTiles.length * numKvHeads;
    return count;
  };
  const costliestTask = (): number => {
    let worst = 0;
    for (const entry of blocked) worst = Math.max(worst, entry.worst / entry.splits + taskCost);
    return worst;
  };
  const waves = Math.ceil(ctas() / slots);
  if (waves < 2) return;
  const before = blocked.map((entry) => entry.splits);
  const costBefore = waves * costliestTask();
  while (ctas() > (waves - 1) * slots) {
    let pick: (typeof blocked)[number] | undefined;
    let pickCost = Number.POSITIVE_INFINITY;
    for (const entry of blocked) {
      if (entry.splits < 2) continue;
      const cost = entry.worst / (entry.splits - 1);
      if (cost < pickCost) {
        pick = entry;
        pickCost = cost;
      }
    }
    if (pick === undefined) break;
    pick.splits -= 1;
  }
  if (ctas() > (waves - 1) * slots || (waves - 1) * costliestTask() >= costBefore) {
    blocked.forEach((entry, index) => {
      entry.splits = before[index]!;
    });
  }
}

function tilesBefore(entry: { readonly blockTiles: readonly number[] }, block: number): number {
  let tiles = 0;
  for (let index = 0; index < block; index++) tiles += entry.blockTiles[index]!;
  return tiles;
}

function sameRange(values: Int32Array, first: number, second: number, length: number): boolean {
  for (let index = 0; index < length; index++) {
    if (values[first + index] !== values[second + index]) return false;
  }
  return true;
}
