import type { AttentionShape, PagedTreeView, PlanStrategy, TreeAttentionPlan } from '@deft/core';
import { PLAN_FORMAT_VERSION } from '@deft/core';
import { chunkTolerance, nextChunkCut } from './chunk-cutter.js';
import { fillTokenSlots } from './fill-token-slots.js';
import { computePlanIO } from './plan-io.js';
import { checkPlanBudget, checkPlanIndex, type PlanMemory } from './plan-memory.js';
import type { TreeQueryLayout } from './tree-query-layout.js';

/**
 * Builds a KV-guided plan (`deft-flatten`, `deft-node`, `deft-node-chunk`): the visible tokens of the
 * tree are walked once in depth-first order and cut into chunks, so every visible token is read
 * exactly once; each chunk is grouped with every query that sees any of it.
 *
 * Two passes: the first records the segments (node runs with one visibility each) and chunk bounds in
 * scratch arrays sized by the number of visible tokens, and counts each chunk's queries; the second
 * fills plan arrays allocated at their exact sizes. No per-token objects are allocated. The bytes of
 * both are checked against `memory` before they are allocated, and the counts against the plan's
 * 32-bit indices.
 *
 * @param chunkSize Target tokens per chunk (`Infinity`: no size limit).
 * @param breakAtNodes Start a new chunk at every node (the `deft-node*` strategies).
 */
export function buildGroupedPlan(
  view: PagedTreeView,
  layout: TreeQueryLayout,
  strategy: PlanStrategy,
  chunkSize: number,
  breakAtNodes: boolean,
  shape: AttentionShape,
  memory: PlanMemory,
): TreeAttentionPlan {
  const { pageSize, order } = view;
  const {
    visibleCount,
    subtreeRankStart,
    ownRankStart,
    ownRankEnd,
    rankPosition,
    rankToQuery,
    uniqueTokens,
  } = layout;
  const tolerance = chunkTolerance(chunkSize, pageSize);

  // Pass 1: segments and chunk bounds. Every segment and chunk holds >= 1 token, so uniqueTokens bounds both.
  const capacity = uniqueTokens;
  // Scratch (six columns) and the token columns of the plan: what is known before pass 1.
  const scratchBytes = 4 * (6 * capacity + 1);
  const tokenBytes = 8 * uniqueTokens;
  checkPlanBudget(
    memory.baseBytes + scratchBytes + tokenBytes,
    memory.budgetBytes,
    `a plan of ${uniqueTokens} tokens`,
  );
  const segmentNode = new Int32Array(capacity);
  const segmentStart = new Int32Array(capacity);
  const segmentEnd = new Int32Array(capacity);
  const segmentRankLow = new Int32Array(capacity);
  const segmentRankHigh = new Int32Array(capacity);
  const chunkSegmentStart = new Int32Array(capacity + 1);
  let numSegments = 0;
  let numChunks = 0;
  let fill = 0;
  let open = false;

  for (let index = 0; index < order.length; index++) {
    const node = order[index]!;
    const visible = visibleCount[node]!;
    if (visible === 0) continue;
    if (breakAtNodes && open) {
      numChunks++;
      open = false;
      fill = 0;
    }
    const ownStart = ownRankStart[node]!;
    const rankLow = subtreeRankStart[node]!;
    let rankHigh = ownRankEnd[node]!;
    let local = 0;
    while (local < visible) {
      // The node's own queries at positions >= local are ranks [ownStart, rankHigh); the smallest of those
      // positions ends the current visibility segment.
      while (rankHigh > ownStart && rankPosition[rankHigh - 1]! < local) rankHigh--;
      const segmentLimit = rankHigh > ownStart ? rankPosition[rankHigh - 1]! + 1 : visible;
      if (open) {
        const room = chunkSize - fill;
        if (room <= 0 || (room <= tolerance && visible - local > room)) {
          numChunks++;
          open = false;
          fill = 0;
        }
      }
      const pieceEnd = nextChunkCut(local, visible, fill, chunkSize, pageSize, tolerance);
      const take = Math.min(pieceEnd, segmentLimit);
      if (!open) {
        chunkSegmentStart[numChunks] = numSegments;
        open = true;
      }
      segmentNode[numSegments] = node;
      segmentStart[numSegments] = local;
      segmentEnd[numSegments] = take;
      segmentRankLow[numSegments] = rankLow;
      segmentRankHigh[numSegments] = rankHigh;
      numSegments++;
      fill += take - local;
      local = take;
      if (take === pieceEnd && pieceEnd < visible) {
        numChunks++;
        open = false;
        fill = 0;
      }
    }
  }
  if (open) numChunks++;
  chunkSegmentStart[numChunks] = numSegments;

  // Pass 1b: per-chunk sizes. Rank intervals of a chunk's segments are laminar in depth-first order, so
  // an interval either nests in an earlier one or starts at or after the furthest end so far. The totals
  // are summed in doubles too: the Int32Array prefix sums would wrap before the limit check below.
  const chunkBytes = 17 * numChunks + 12;
  checkPlanBudget(
    memory.baseBytes + scratchBytes + tokenBytes + chunkBytes,
    memory.budgetBytes,
    `a plan of ${uniqueTokens} tokens in ${numChunks} chunks`,
  );
  let totalPartials = 0;
  let totalMaskWords = 0;
  const chunkTokenIndptr = new Int32Array(numChunks + 1);
  const chunkSegmentCount = new Int32Array(numChunks);
  const chunkQueryIndptr = new Int32Array(numChunks + 1);
  const chunkMaskOffset = new Int32Array(numChunks + 1);
  const chunkFullyVisible = new Uint8Array(numChunks);
  for (let chunk = 0; chunk < numChunks; chunk++) {
    const first = chunkSegmentStart[chunk]!;
    const last = chunkSegmentStart[chunk + 1]!;
    let tokens = 0;
    let queries = 0;
    let furthest = -1;
    for (let segment = first; segment < last; segment++) {
      tokens += segmentEnd[segment]! - segmentStart[segment]!;
      const low = segmentRankLow[segment]!;
      const high = segmentRankHigh[segment]!;
      if (low >= furthest) {
        queries += high - low;
        furthest = high;
      } else if (high > furthest) {
        queries += high - furthest; // not reached for a valid pre-order; kept so the union stays exact
        furthest = high;
      }
    }
    let fullyVisible = 1;
    for (let segment = first; segment < last; segment++) {
      if (segmentRankHigh[segment]! - segmentRankLow[segment]! !== queries) {
        fullyVisible = 0;
        break;
      }
    }
    totalPartials += queries;
    totalMaskWords += (last - first) * ((queries + 31) >>> 5);
    chunkTokenIndptr[chunk + 1] = chunkTokenIndptr[chunk]! + tokens;
    chunkSegmentCount[chunk] = last - first;
    chunkQueryIndptr[chunk + 1] = chunkQueryIndptr[chunk]! + queries;
    chunkMaskOffset[chunk + 1] = chunkMaskOffset[chunk]! + (last - first) * ((queries + 31) >>> 5);
    chunkFullyVisible[chunk] = fullyVisible;
  }

  checkPlanIndex('partial states', totalPartials, 'plan fewer queries per step or use longer chunks');
  checkPlanIndex('mask words', totalMaskWords, 'plan fewer queries per step or use longer chunks');
  // The partial lists (chunkQueries, queryPartials), the mask, the reduction CSR and its cursors.
  const numQueries = layout.numQueries;
  const partialBytes = 8 * totalPartials + 4 * totalMaskWords + 4 * (3 * numQueries + 1);
  checkPlanBudget(
    memory.baseBytes + scratchBytes + tokenBytes + chunkBytes + partialBytes,
    memory.budgetBytes,
    `a plan of ${uniqueTokens} tokens, ${numChunks} chunks and ${totalPartials} partial states`,
  );

  // Pass 2: fill the plan arrays at their exact sizes.
  const numTokens = chunkTokenIndptr[numChunks]!;
  const numPartials = chunkQueryIndptr[numChunks]!;
  const tokenSlots = new Int32Array(numTokens);
  const tokenSegments = new Int32Array(numTokens);
  const chunkQueries = new Int32Array(numPartials);
  const mask = new Uint32Array(chunkMaskOffset[numChunks]!);
  const localIndex = layout.ranksAscending ? undefined : new Int32Array(layout.numQueries);
  for (let chunk = 0; chunk < numChunks; chunk++) {
    const first = chunkSegmentStart[chunk]!;
    const last = chunkSegmentStart[chunk + 1]!;
    let write = chunkTokenIndptr[chunk]!;
    for (let segment = first; segment < last; segment++) {
      const start = segmentStart[segment]!;
      const end = segmentEnd[segment]!;
      fillTokenSlots(view, segmentNode[segment]!, start, end, tokenSlots, write);
      tokenSegments.fill(segment - first, write, write + end - start);
      write += end - start;
    }

    const queryBase = chunkQueryIndptr[chunk]!;
    const words = (chunkQueryIndptr[chunk + 1]! - queryBase + 31) >>> 5;
    const maskBase = chunkMaskOffset[chunk]!;
    let queryWrite = queryBase;
    let furthest = -1;
    let topLow = 0;
    let topIndex = 0;
    for (let segment = first; segment < last; segment++) {
      const low = segmentRankLow[segment]!;
      const high = segmentRankHigh[segment]!;
      if (low >= furthest) {
        topLow = low;
        topIndex = queryWrite - queryBase;
        for (let rank = low; rank < high; rank++) chunkQueries[queryWrite++] = rankToQuery[rank]!;
        furthest = high;
      } else if (high > furthest) {
        for (let rank = furthest; rank < high; rank++) chunkQueries[queryWrite++] = rankToQuery[rank]!;
        furthest = high;
      }
      if (localIndex === undefined) {
        // Ranks ascend with query indices: the segment's queries are a contiguous run of the chunk's.
        setBitRange(mask, maskBase + (segment - first) * words, topIndex + low - topLow, high - low);
      }
    }
    if (localIndex !== undefined) {
      const chunkQueryList = chunkQueries.subarray(queryBase, queryWrite);
      chunkQueryList.sort();
      for (let entry = 0; entry < chunkQueryList.length; entry++) localIndex[chunkQueryList[entry]!] = entry;
      for (let segment = first; segment < last; segment++) {
        const row = maskBase + (segment - first) * words;
        for (let rank = segmentRankLow[segment]!; rank < segmentRankHigh[segment]!; rank++) {
          const bit = localIndex[rankToQuery[rank]!]!;
          mask[row + (bit >>> 5)]! |= 1 << (bit & 31);
        }
      }
    }
  }

  // The reduction's CSR: each query's partial slots in ascending chunk order.
  const queryPartialIndptr = new Int32Array(numQueries + 1);
  for (let slot = 0; slot < numPartials; slot++) queryPartialIndptr[chunkQueries[slot]! + 1]!++;
  for (let query = 0; query < numQueries; query++) {
    queryPartialIndptr[query + 1]! += queryPartialIndptr[query]!;
  }
  const cursor = queryPartialIndptr.slice(0, numQueries);
  const queryPartials = new Int32Array(numPartials);
  for (let slot = 0; slot < numPartials; slot++) queryPartials[cursor[chunkQueries[slot]!]!++] = slot;

  const arrays = {
    chunkTokenIndptr,
    tokenSlots,
    tokenSegments,
    chunkSegmentCount,
    chunkQueryIndptr,
    chunkQueries,
    chunkMaskOffset,
    mask,
    chunkFullyVisible,
    queryPartialIndptr,
    queryPartials,
  };
  return {
    version: PLAN_FORMAT_VERSION,
    strategy,
    pageSize,
    numQueries,
    numChunks,
    numPartials,
    ...arrays,
    io: computePlanIO(uniqueTokens, arrays, shape),
    shape,
  };
}

/** Sets bits `first .. first + count` (LSB-first within each u32 word) of the row starting at `rowBase`. */
function setBitRange(mask: Uint32Array, rowBase: number, first: number, count: number): void {
  let bit = first;
  const end = first + count;
  while (bit < end) {
    const offset = bit & 31;
    const run = Math.min(32 - offset, end - bit);
    const bits = run === 32 ? 0xffffffff : ((1 << run) - 1) << offset;
    mask[rowBase + (bit >>> 5)]! |= bits;
    bit += run;
  }
}
