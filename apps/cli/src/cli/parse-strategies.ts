import { PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import { UsageError } from '../errors/usage-error.js';

/**
 * The strategies of `--strategies` (each once, in the order given; `fallback` when absent), with the
 * `sequence` baseline appended when it is not listed, so every ratio to it has its denominator.
 * @throws UsageError naming an unknown strategy.
 */
export function parseStrategies(
  names: readonly string[] | undefined,
  fallback: readonly PlanStrategy[] = PLAN_STRATEGIES,
): PlanStrategy[] {
  const strategies: PlanStrategy[] = [];
  for (const name of names ?? fallback) {
    if (!(PLAN_STRATEGIES as readonly string[]).includes(name)) {
      throw new UsageError(
        `--strategies: unknown strategy '${name}' (strategies: ${PLAN_STRATEGIES.join(', ')})`,
        {
          argument: '--strategies',
          actual: name,
        },
      );
    }
    if (!strategies.includes(name as PlanStrategy)) strategies.push(name as PlanStrategy);
  }
  if (!strategies.includes('sequence')) strategies.push('sequence');
  return strategies;
}
