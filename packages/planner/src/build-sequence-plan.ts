import type { AttentionShape, PagedTreeView, TreeAttentionPlan, TreeQueries } from '@deft/core';
import { PLAN_FORMAT_VERSION } from '@deft/core';
import { chunkTolerance, nextChunkCut } from './chunk-cutter.js';
import { fillTokenSlots } from './fill-token-slots.js';
import { computePlanIO } from './plan-io.js';
import { checkPlanBudget, checkPlanIndex, type PlanMemory } from './plan-memory.js';
import type { TreeQueryLayout } from './tree-query-layout.js';

/** Σ over queries of the tokens on each query's root-to-query path. */
export function sumPathLengths(view: PagedTreeView, queries: TreeQueries): number {
  let total = 0;
  for (let query = 0; query < queries.nodes.length; query++) {
    const node = queries.nodes[query]!;
    total += queries.positions[query]! + 1;
    for (let ancestor = view.parent[node]!; ancestor !== -1; ancestor = view.parent[ancestor]!) {
      total += view.tokenCount[ancestor]!;
    }
  }
  return total;
}

/**
 * Builds the `sequence` baseline plan: every query reads its whole root-to-query path on its own, cut
 * into chunks of about `chunkSize` tokens (split-KV, as Flash-Decoding does). Chunks are query-major;
 * each has one query and one segment per tree node it touches, all visible.
 */
export function buildSequencePlan(
  view: PagedTreeView,
  layout: TreeQueryLayout,
  queries: TreeQueries,
  chunkSize: number,
  shape: AttentionShape,
  memory: PlanMemory,
): TreeAttentionPlan {
  const { pageSize, parent, tokenCount } = view;
  const numQueries = layout.numQueries;
  const tolerance = chunkTolerance(chunkSize, pageSize);
  const path = new Int32Array(parent.length);

  const counts = { chunks: 0, segments: 0, tokens: 0 };
  // Pass 1 counts; pass 2 (with arrays) fills. Both walk the same cuts.
  const walk = (arrays: SequenceArrays | undefined): void => {
    let chunk = 0;
    let segment = 0;
    let token = 0;
    let segmentInChunk = 0;
    for (let query = 0; query < numQueries; query++) {
      const queryNode = queries.nodes[query]!;
      let depth = 0;
      for (let node = queryNode; node !== -1; node = parent[node]!) path[depth++] = node;
      let fill = 0;
      let open = false;
      for (let level = depth - 1; level >= 0; level--) {
        const node = path[level]!;
        const end = node === queryNode ? queries.positions[query]! + 1 : tokenCount[node]!;
        let local = 0;
        while (local < end) {
          if (open) {
            const room = chunkSize - fill;
            if (room <= 0 || (room <= tolerance && end - local > room)) {
              chunk++;
              open = false;
            }
          }
          if (!open) {
            if (arrays !== undefined) {
              arrays.chunkTokenIndptr[chunk] = token;
              arrays.chunkQueries[chunk] = query;
            }
            open = true;
            fill = 0;
            segmentInChunk = 0;
          }
          const pieceEnd = nextChunkCut(local, end, fill, chunkSize, pageSize, tolerance);
          if (arrays !== undefined) {
            fillTokenSlots(view, node, local, pieceEnd, arrays.tokenSlots, token);
            arrays.tokenSegments.fill(segmentInChunk, token, token + pieceEnd - local);
            arrays.chunkSegmentCount[chunk] = segmentInChunk + 1;
          }
          segmentInChunk++;
          segment++;
          token += pieceEnd - local;
          fill += pieceEnd - local;
          local = pieceEnd;
          if (pieceEnd < end) {
            chunk++;
            open = false;
          }
        }
      }
      if (open) chunk++;
      if (arrays !== undefined) arrays.queryPartialIndptr[query + 1] = chunk;
    }
    counts.chunks = chunk;
    counts.segments = segment;
    counts.tokens = token;
  };

  walk(undefined);
  const { chunks: numChunks, segments: numSegments, tokens: numTokens } = counts;
  checkPlanIndex('tokens read (the sum of the query paths)', numTokens, 'plan fewer queries per step');
  checkPlanIndex(
    'mask words (one per segment)',
    numSegments,
    'plan fewer queries per step or use longer chunks',
  );
  // The path scratch, two token columns, nine chunk or query columns and the mask.
  const bytes = 4 * parent.length + 8 * numTokens + 25 * numChunks + 4 * numSegments + 4 * numQueries + 16;
  checkPlanBudget(
    memory.baseBytes + bytes,
    memory.budgetBytes,
    `a sequence plan of ${numTokens} tokens read in ${numChunks} chunks`,
  );
  const arrays: SequenceArrays = {
    chunkTokenIndptr: new Int32Array(numChunks + 1),
    tokenSlots: new Int32Array(numTokens),
    tokenSegments: new Int32Array(numTokens),
    chunkSegmentCount: new Int32Array(numChunks),
    chunkQueries: new Int32Array(numChunks),
    queryPartialIndptr: new Int32Array(numQueries + 1),
  };
  walk(arrays);
  arrays.chunkTokenIndptr[numChunks] = numTokens;

  const chunkQueryIndptr = new Int32Array(numChunks + 1);
  const chunkMaskOffset = new Int32Array(numChunks + 1);
  let maskWords = 0;
  for (let chunk = 0; chunk < numChunks; chunk++) {
    chunkQueryIndptr[chunk + 1] = chunk + 1;
    maskWords += arrays.chunkSegmentCount[chunk]!;
    chunkMaskOffset[chunk + 1] = maskWords;
  }
  const mask = new Uint32Array(numSegments).fill(1);
  const queryPartials = new Int32Array(numChunks);
  for (let chunk = 0; chunk < numChunks; chunk++) queryPartials[chunk] = chunk;
  const planArrays = {
    chunkTokenIndptr: arrays.chunkTokenIndptr,
    tokenSlots: arrays.tokenSlots,
    tokenSegments: arrays.tokenSegments,
    chunkSegmentCount: arrays.chunkSegmentCount,
    chunkQueryIndptr,
    chunkQueries: arrays.chunkQueries,
    chunkMaskOffset,
    mask,
    chunkFullyVisible: new Uint8Array(numChunks).fill(1),
    queryPartialIndptr: arrays.queryPartialIndptr,
    queryPartials,
  };
  return {
    version: PLAN_FORMAT_VERSION,
    strategy: 'sequence',
    pageSize,
    numQueries,
    numChunks,
    numPartials: numChunks,
    ...planArrays,
    io: computePlanIO(layout.uniqueTokens, planArrays, shape),
    shape,
  };
}

interface SequenceArrays {
  readonly chunkTokenIndptr: Int32Array;
  readonly tokenSlots: Int32Array;
  readonly tokenSegments: Int32Array;
  readonly chunkSegmentCount: Int32Array;
  readonly chunkQueries: Int32Array;
  readonly queryPartialIndptr: Int32Array;
}
