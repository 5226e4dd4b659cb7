import { constants as bufferConstants } from 'node:buffer';
import { totalmem } from 'node:os';
import { CapacityError } from '@deft/core';
import { UsageError } from '../errors/usage-error.js';
import { formatBytes } from '../format/format-number.js';
import { workloadQueries } from './parse-workload.js';
import type { Workload } from './workload.js';

/** Longest typed array this Node.js can create, in elements (2^32 on Node 20). */
export const MAX_TYPED_ARRAY_LENGTH: number = bufferConstants.MAX_LENGTH;
/** Largest slot index the 32-bit page tables and slot lists can hold. */
const MAX_SLOTS = 2 ** 31 - 1;
/** Share of the machine's memory a workload may use unless `DEFT_HOST_MEMORY_BUDGET` says otherwise. */
const DEFAULT_BUDGET_FRACTION = 0.5;

/** Host memory a workload needs for one layer of `deft attn` or `deft bench`, estimated before allocating. */
export interface WorkloadMemory {
  readonly treeTokens: number;
  /** Slots of the KV store: every node starts on a fresh page. */
  readonly numSlots: number;
  readonly queries: number;
  /** Elements of the longest single typed array (K or V in slot or node order, or Q). */
  readonly largestArrayLength: number;
  /** Bytes of everything allocated together: the paged tree, random Q/K/V, the KV storage, Q and out. */
  readonly bytes: number;
  /** Extra bytes of the `--check` reference (K and V scattered to slots, its output). */
  readonly referenceBytes: number;
}

/**
 * Counts the bytes a workload needs without allocating anything: O(nodes) arithmetic.
 *
 * @example
 * ```ts
 * estimateWorkloadMemory(findBuiltinWorkload('sd-t64')!).bytes;
 * ```
 */
export function estimateWorkloadMemory(workload: Workload): WorkloadMemory {
  let treeTokens = 0;
  let numSlots = 0;
  for (const node of workload.nodes) {
    treeTokens += node.tokens;
    numSlots += Math.ceil(node.tokens / workload.pageSize) * workload.pageSize;
  }
  const queries = workloadQueries(workload).length;
  const kvRow = workload.kvHeads * workload.headDim;
  const queryRow = workload.heads * workload.headDim;
  const kvBytesPerElement = workload.dtype === 'f16' ? 2 : 4;
  const treeBytes =
    4 * treeTokens + 4 * (numSlots / workload.pageSize) + 8 * queries + 16 * workload.nodes.length;
  const inputBytes = 4 * queries * queryRow + 2 * 4 * treeTokens * kvRow;
  const storageBytes = 2 * kvBytesPerElement * numSlots * kvRow + 2 * 4 * queries * queryRow;
  return {
    treeTokens,
    numSlots,
    queries,
    largestArrayLength: Math.max(numSlots * kvRow, treeTokens * kvRow, queries * queryRow),
    bytes: treeBytes + inputBytes + storageBytes,
    referenceBytes: 2 * 4 * numSlots * kvRow + 8 * queries * queryRow,
  };
}

/**
 * The host-memory budget of a command: `DEFT_HOST_MEMORY_BUDGET` (bytes) when set, else half of the
 * machine's memory.
 *
 * @throws {UsageError} when `DEFT_HOST_MEMORY_BUDGET` is not a whole number of bytes.
 */
export function hostMemoryBudget(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.DEFT_HOST_MEMORY_BUDGET;
  if (text === undefined || text.trim() === '') return Math.floor(totalmem() * DEFAULT_BUDGET_FRACTION);
  const bytes = Number(text);
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError(`DEFT_HOST_MEMORY_BUDGET must be a whole number of bytes >= 1, got '${text}'`, {
      argument: 'DEFT_HOST_MEMORY_BUDGET',
    });
  }
  return bytes;
}

/** Options of {@link ensureWorkloadFits}. */
export interface WorkloadFitOptions {
  /** Bytes the command may use (default {@link hostMemoryBudget}). */
  readonly budgetBytes?: number;
  /** Count the `--check` reference too. */
  readonly withReference?: boolean;
}

/**
 * Refuses, before anything is allocated, a workload whose slots overflow 32-bit indices, whose K/V or Q
 * would exceed the longest typed array, or whose total would exceed the host-memory budget.
 *
 * @throws {CapacityError} naming the size needed and the limit, with what to change.
 * @example
 * ```ts
 * ensureWorkloadFits(workload, { withReference: values.check === true });
 * ```
 */
export function ensureWorkloadFits(workload: Workload, options: WorkloadFitOptions = {}): WorkloadMemory {
  const memory = ensureTreeFits(workload);
  const label = describe(workload, memory);
  if (memory.largestArrayLength > MAX_TYPED_ARRAY_LENGTH) {
    throw new CapacityError(
      `${label} needs a typed array of ${memory.largestArrayLength} elements (${formatBytes(4 * memory.largestArrayLength)}), ` +
        `above the limit of ${MAX_TYPED_ARRAY_LENGTH} elements: use a smaller tree or fewer heads (--kv-heads, --head-dim)`,
      {
        argument: 'workload',
        expected: `<= ${MAX_TYPED_ARRAY_LENGTH} elements`,
        actual: memory.largestArrayLength,
      },
    );
  }
  const budget = options.budgetBytes ?? hostMemoryBudget();
  const bytes = memory.bytes + (options.withReference === true ? memory.referenceBytes : 0);
  if (bytes > budget) {
    throw new CapacityError(
      `${label} needs about ${formatBytes(bytes)} (${bytes} bytes) of host memory, above the budget of ` +
        `${formatBytes(budget)} (${budget} bytes): use a smaller tree or fewer heads, or raise DEFT_HOST_MEMORY_BUDGET`,
      { argument: 'workload', expected: `<= ${budget} bytes`, actual: bytes },
    );
  }
  return memory;
}

/**
 * Refuses a workload tree whose slots overflow 32-bit indices or the longest typed array: what
 * `buildWorkload` checks before laying the tree out (the K/V and the budget are {@link ensureWorkloadFits}'s).
 *
 * @throws {CapacityError} naming the slots needed and the limit.
 */
export function ensureTreeFits(workload: Workload): WorkloadMemory {
  const memory = estimateWorkloadMemory(workload);
  const limit = Math.min(MAX_SLOTS, MAX_TYPED_ARRAY_LENGTH);
  if (memory.numSlots > limit) {
    throw new CapacityError(
      `${describe(workload, memory)} needs ${memory.numSlots} KV slots (${formatBytes(4 * memory.numSlots)} of slot indices alone); ` +
        `slot indices are 32-bit, so the limit is ${limit}: use a smaller tree`,
      { argument: 'workload', expected: `<= ${limit} slots`, actual: memory.numSlots },
    );
  }
  return memory;
}

function describe(workload: Workload, memory: WorkloadMemory): string {
  return `workload '${workload.name}' (${memory.treeTokens} tokens, ${memory.queries} queries)`;
}
