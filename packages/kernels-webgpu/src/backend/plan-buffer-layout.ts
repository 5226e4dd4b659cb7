import type { TreeAttentionPlan } from '@deft/core';

/** Offsets (in u32 words) of the plan's arrays inside one uploaded buffer. */
export interface PlanBufferLayout {
  readonly chunkTokenIndptr: number;
  readonly tokenSlots: number;
  readonly tokenSegments: number;
  readonly chunkQueryIndptr: number;
  readonly chunkQueries: number;
  readonly chunkMaskOffset: number;
  readonly mask: number;
  readonly chunkFullyVisible: number;
  readonly queryPartialIndptr: number;
  readonly queryPartials: number;
}

/**
 * Packs every index array of a plan into one `Uint32Array` (one `writeBuffer` per step):
 * `chunkTokenIndptr, tokenSlots, tokenSegments, chunkQueryIndptr, chunkQueries, chunkMaskOffset, mask,
 * chunkFullyVisible (one word per chunk), queryPartialIndptr, queryPartials`, each starting on a
 * 4-word boundary. The plan must already be validated (all values are non-negative).
 */
export function packPlan(plan: TreeAttentionPlan): {
  words: Uint32Array<ArrayBuffer>;
  layout: PlanBufferLayout;
} {
  const arrays: [keyof PlanBufferLayout, ArrayLike<number>][] = [
    ['chunkTokenIndptr', plan.chunkTokenIndptr],
    ['tokenSlots', plan.tokenSlots],
    ['tokenSegments', plan.tokenSegments],
    ['chunkQueryIndptr', plan.chunkQueryIndptr],
    ['chunkQueries', plan.chunkQueries],
    ['chunkMaskOffset', plan.chunkMaskOffset],
    ['mask', plan.mask],
    ['chunkFullyVisible', plan.chunkFullyVisible],
    ['queryPartialIndptr', plan.queryPartialIndptr],
    ['queryPartials', plan.queryPartials],
  ];
  const offsets: Partial<Record<keyof PlanBufferLayout, number>> = {};
  let total = 0;
  for (const [name, array] of arrays) {
    offsets[name] = total;
    total += Math.ceil(array.length / 4) * 4;
  }
  const words = new Uint32Array(Math.max(4, total));
  for (const [name, array] of arrays) {
    const offset = offsets[name]!;
    if (array instanceof Int32Array)
      words.set(new Uint32Array(array.buffer, array.byteOffset, array.length), offset);
    else words.set(array, offset);
  }
  return { words, layout: offsets as PlanBufferLayout };
}
