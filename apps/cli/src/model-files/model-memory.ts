import { totalmem } from 'node:os';
import { hostMemoryBudget } from '../workloads/workload-memory.js';

/**
 * The host memory a model's weights may take when a command loads one: `DEFT_HOST_MEMORY_BUDGET` (bytes)
 * when set, else the machine's memory (a model larger than that cannot load at all).
 *
 * @throws {UsageError} when `DEFT_HOST_MEMORY_BUDGET` is not a whole number of bytes.
 */
export function modelMemoryBudget(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.DEFT_HOST_MEMORY_BUDGET;
  return text === undefined || text.trim() === '' ? totalmem() : hostMemoryBudget(env);
}
