import type { AttentionShape, TreeAttentionPlan } from '@deft/core';
import type { ExecutionSchedule } from './build-schedule.js';
import type { TaskSchedule } from './build-tasks.js';

/** Field order of the header the addon reads (native/src/runtime/runtime.h, PlanHeaderField). */
export const HEADER_FIELDS = {
  numExecChunks: 0,
  numQueries: 1,
  numExecPartials: 2,
  numUnits: 3,
  numEmptyQueries: 4,
  numHeads: 5,
  numKvHeads: 6,
  headDim: 7,
  kvType: 8,
  pageSize: 9,
  maxSlot: 10,
  residentTiles: 11,
  kernel: 12,
  numTokens: 13,
  maskWords: 14,
  numChunkQueries: 15,
  offsetTokenSlots: 16,
  offsetTokenSegments: 17,
  offsetChunkQueries: 18,
  offsetMask: 19,
  offsetExecChunks: 20,
  offsetUnits: 21,
  offsetQueryPartialIndptr: 22,
  offsetQueryPartials: 23,
  offsetEmptyQueries: 24,
  offsetMergeQueries: 25,
  numMergeQueries: 26,
  fuseMerge: 27,
  totalBytes: 28,
  executor: 29,
  numTasks: 30,
  numTaskRows: 31,
  numTaskSlots: 32,
  numSuffixSlots: 33,
  offsetTasks: 34,
  offsetTaskSlots: 35,
  offsetTaskRows: 36,
  offsetSuffixIndptr: 37,
  offsetSuffixSlots: 38,
} as const;

/** Number of header fields. */
export const HEADER_LENGTH = 39;

/** How a packed plan executes: 0 work units over the plan's chunks (v1-v6), 1 mask-free tasks (v7). */
export type ExecutorCode = 0 | 1;

type ArrayField = keyof typeof HEADER_FIELDS;

/** Lays `arrays` out at 16-byte-aligned offsets, writing each offset into `header`. */
function packArrays(header: Int32Array, arrays: [ArrayField, Int32Array | Uint32Array][]): Uint8Array {
  let offset = 0;
  for (const [field, array] of arrays) {
    header[HEADER_FIELDS[field]] = offset;
    offset += Math.ceil(array.byteLength / 16) * 16;
  }
  const bytes = new Uint8Array(offset);
  for (const [field, array] of arrays) {
    bytes.set(
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
      header[HEADER_FIELDS[field]]!,
    );
  }
  header[HEADER_FIELDS.totalBytes] = offset;
  return bytes;
}

/** Which attention kernel a schedule asks for: 0 auto, 1 mma.sync tensor cores, 2 CUDA cores, 3 wgmma. */
export type KernelCode = 0 | 1 | 2 | 3;

/** A schedule laid out for one upload: a header of counts and byte offsets, and the bytes. */
export interface PackedSchedule {
  /** `[HEADER_LENGTH]` see {@link HEADER_FIELDS}. */
  readonly header: Int32Array;
  /** Every array, each at a 16-byte-aligned offset. */
  readonly bytes: Uint8Array;
}

/** Header fields both executors fill the same way. */
function writeCommonFields(
  header: Int32Array,
  plan: TreeAttentionPlan,
  shape: AttentionShape,
  kernel: KernelCode,
  schedule: { readonly maxSlot: number; readonly mergeQueries: Int32Array },
): void {
  header[HEADER_FIELDS.numQueries] = plan.numQueries;
  header[HEADER_FIELDS.numHeads] = shape.numHeads;
  header[HEADER_FIELDS.numKvHeads] = shape.numKvHeads;
  header[HEADER_FIELDS.headDim] = shape.headDim;
  header[HEADER_FIELDS.kvType] = shape.kvDtype === 'f16' ? 1 : 0;
  header[HEADER_FIELDS.pageSize] = plan.pageSize;
  header[HEADER_FIELDS.maxSlot] = schedule.maxSlot;
  header[HEADER_FIELDS.kernel] = kernel;
  header[HEADER_FIELDS.numMergeQueries] = schedule.mergeQueries.length;
}

/**
 * Packs the plan arrays the kernels read (token slots and segments, chunk queries, mask) and the
 * execution schedule into one buffer, so a plan is uploaded with a single copy.
 *
 * @example
 * ```ts
 * const packed = packSchedule(plan, shape, buildSchedule(plan, options), 0);
 * addon.preparePlan(context, packed.header, packed.bytes);
 * ```
 */
export function packSchedule(
  plan: TreeAttentionPlan,
  shape: AttentionShape,
  schedule: ExecutionSchedule,
  kernel: KernelCode,
): PackedSchedule {
  const header = new Int32Array(HEADER_LENGTH);
  const bytes = packArrays(header, [
    ['offsetTokenSlots', plan.tokenSlots],
    ['offsetTokenSegments', plan.tokenSegments],
    ['offsetChunkQueries', plan.chunkQueries],
    ['offsetMask', plan.mask],
    ['offsetExecChunks', schedule.chunks],
    ['offsetUnits', schedule.units],
    ['offsetQueryPartialIndptr', schedule.queryPartialIndptr],
    ['offsetQueryPartials', schedule.queryPartials],
    ['offsetEmptyQueries', schedule.emptyQueries],
    ['offsetMergeQueries', schedule.mergeQueries],
  ]);
  writeCommonFields(header, plan, shape, kernel, schedule);
  header[HEADER_FIELDS.numExecPartials] = schedule.numExecPartials;
  header[HEADER_FIELDS.numExecChunks] = schedule.numExecChunks;
  header[HEADER_FIELDS.numUnits] = schedule.numUnits;
  header[HEADER_FIELDS.numEmptyQueries] = schedule.emptyQueries.length;
  header[HEADER_FIELDS.residentTiles] = schedule.residentTiles;
  header[HEADER_FIELDS.numTokens] = plan.tokenSlots.length;
  header[HEADER_FIELDS.maskWords] = plan.mask.length;
  header[HEADER_FIELDS.numChunkQueries] = plan.chunkQueries.length;
  header[HEADER_FIELDS.fuseMerge] = schedule.fuseMerge ? 1 : 0;
  return { header, bytes };
}

/**
 * Packs a mask-free task schedule (see `buildTaskSchedule`) into one buffer with the same header
 * layout (`executor` = 1; the unit executor's fields stay zero).
 *
 * @example
 * ```ts
 * const packed = packTaskSchedule(plan, shape, buildTaskSchedule(plan, options), 0);
 * addon.preparePlan(context, packed.header, packed.bytes);
 * ```
 */
export function packTaskSchedule(
  plan: TreeAttentionPlan,
  shape: AttentionShape,
  schedule: TaskSchedule,
  kernel: KernelCode,
): PackedSchedule {
  const header = new Int32Array(HEADER_LENGTH);
  const bytes = packArrays(header, [
    ['offsetTasks', schedule.tasks],
    ['offsetTaskSlots', schedule.taskSlots],
    ['offsetTaskRows', schedule.taskRows],
    ['offsetQueryPartialIndptr', schedule.queryPartialIndptr],
    ['offsetQueryPartials', schedule.queryPartials],
    ['offsetSuffixIndptr', schedule.suffixIndptr],
    ['offsetSuffixSlots', schedule.suffixSlots],
    ['offsetMergeQueries', schedule.mergeQueries],
  ]);
  writeCommonFields(header, plan, shape, kernel, schedule);
  header[HEADER_FIELDS.executor] = 1;
  header[HEADER_FIELDS.numExecPartials] = schedule.numPartials;
  header[HEADER_FIELDS.numTasks] = schedule.numTasks;
  header[HEADER_FIELDS.numTaskRows] = schedule.taskRows.length / 2;
  header[HEADER_FIELDS.numTaskSlots] = schedule.taskSlots.length;
  header[HEADER_FIELDS.numSuffixSlots] = schedule.suffixSlots.length;
  return { header, bytes };
}
