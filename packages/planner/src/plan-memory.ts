import { CapacityError } from '@deft/core';

/**
 * Largest count a plan can index: tokens, partial states, mask words and KV slots are stored in
 * `Int32Array`s (`chunkTokenIndptr`, `chunkQueryIndptr`, `chunkMaskOffset`, `tokenSlots`), so `2^31 - 1`.
 */
export const MAX_PLAN_INDEX = 2 ** 31 - 1;

/**
 * Refuses a count a plan cannot index, before anything of that size is allocated.
 *
 * @param what What is counted, in the plural (`'tokens'`, `'partial states'`).
 * @throws {CapacityError} naming the count and {@link MAX_PLAN_INDEX}.
 */
export function checkPlanIndex(what: string, count: number, hint: string): void {
  if (count <= MAX_PLAN_INDEX) return;
  throw new CapacityError(
    `planTreeAttention: the plan would hold ${count} ${what}, above the limit of ${MAX_PLAN_INDEX} of its ` +
      `32-bit indices; ${hint}`,
    { argument: 'view', expected: `<= ${MAX_PLAN_INDEX} ${what}`, actual: count },
  );
}

/**
 * Refuses a plan whose scratch and plan arrays need more than `budgetBytes`, before allocating them.
 *
 * @param bytes The planner's estimate: every array it allocates for this plan, scratch included.
 * @param what What the estimate covers, for the message.
 * @throws {CapacityError} naming the bytes and the budget.
 */
export function checkPlanBudget(bytes: number, budgetBytes: number, what: string): void {
  if (bytes <= budgetBytes) return;
  throw new CapacityError(
    `planTreeAttention: ${what} needs about ${bytes} bytes (scratch and plan arrays), above ` +
      `options.hostMemoryBudgetBytes (${budgetBytes} bytes); plan fewer tokens or queries per step, use ` +
      'longer chunks, or raise the budget',
    { argument: 'options.hostMemoryBudgetBytes', expected: `>= ${bytes}`, actual: budgetBytes },
  );
}

/**
 * Bytes of the index `buildTreeQueryLayout` builds over `numIds` node ids and `numQueries` queries: six
 * 32-bit `[numIds]` columns and one byte column, two 32-bit `[numQueries]` columns.
 */
export function layoutBytes(numIds: number, numQueries: number): number {
  return 25 * numIds + 8 * numQueries;
}

/** What a plan builder checks its allocations against. */
export interface PlanMemory {
  /** `options.hostMemoryBudgetBytes` (`Infinity` when not given). */
  readonly budgetBytes: number;
  /** Bytes already allocated for this plan before the builder runs (the layout). */
  readonly baseBytes: number;
}
