import { InvalidArgumentError } from '../errors/invalid-argument-error.js';
import { PLAN_FORMAT_VERSION, PLAN_STRATEGIES, type TreeAttentionPlan } from './plan.js';

/** Limits a backend checks a plan against before running it. */
export interface PlanLimits {
  /** Slots in the KV storage (`numPages × pageSize`); every token slot must be below it. */
  readonly numSlots?: number;
  /** Page size of the KV storage; must equal the plan's. */
  readonly pageSize?: number;
  /** Queries in the Q tensor; must equal the plan's. */
  readonly numQueries?: number;
}

function fail(argument: string, message: string, actual?: unknown): never {
  throw new InvalidArgumentError(
    `invalid plan: ${argument} ${message}; build plans with planTreeAttention()`,
    {
      argument: `plan.${argument}`,
      actual,
    },
  );
}

function checkIndptr(name: string, indptr: Int32Array, length: number, total: number): void {
  if (!(indptr instanceof Int32Array) || indptr.length !== length)
    fail(name, `must be an Int32Array of length ${length}`);
  if (indptr[0] !== 0) fail(name, 'must start at 0', indptr[0]);
  for (let index = 1; index < length; index++) {
    if (indptr[index]! < indptr[index - 1]!) fail(name, `must be non-decreasing (at ${index})`);
  }
  if (indptr[length - 1] !== total) fail(name, `must end at ${total}`, indptr[length - 1]);
}

/**
 * Checks that a plan is internally consistent and fits the given limits, in time linear in its size.
 * Every backend calls this before uploading a plan, so a malformed plan never reaches a kernel.
 *
 * @throws InvalidArgumentError naming the first inconsistent field.
 * @example
 * ```ts
 * validatePlan(plan, { numSlots: storage.descriptor.numPages * storage.descriptor.pageSize });
 * ```
 */
export function validatePlan(plan: TreeAttentionPlan, limits: PlanLimits = {}): void {
  if (typeof plan !== 'object' || plan === null) fail('', 'must be an object', plan);
  if (plan.version !== PLAN_FORMAT_VERSION) fail('version', `must be ${PLAN_FORMAT_VERSION}`, plan.version);
  if (!PLAN_STRATEGIES.includes(plan.strategy)) fail('strategy', 'is unknown', plan.strategy);
  const { numChunks, numQueries, numPartials, pageSize } = plan;
  for (const [name, value] of [
    ['numChunks', numChunks],
    ['numQueries', numQueries],
    ['numPartials', numPartials],
    ['pageSize', pageSize],
  ] as const) {
    if (!Number.isInteger(value) || value < (name === 'pageSize' ? 1 : 0))
      fail(name, 'must be a non-negative integer', value);
  }
  if (limits.pageSize !== undefined && limits.pageSize !== pageSize)
    fail('pageSize', `must equal the storage's ${limits.pageSize}`, pageSize);
  if (limits.numQueries !== undefined && limits.numQueries !== numQueries) {
    fail('numQueries', `must equal the number of query rows ${limits.numQueries}`, numQueries);
  }
  const numTokens = plan.tokenSlots.length;
  checkIndptr('chunkTokenIndptr', plan.chunkTokenIndptr, numChunks + 1, numTokens);
  if (!(plan.tokenSegments instanceof Int32Array) || plan.tokenSegments.length !== numTokens) {
    fail('tokenSegments', `must be an Int32Array of length ${numTokens}`);
  }
  if (!(plan.chunkSegmentCount instanceof Int32Array) || plan.chunkSegmentCount.length !== numChunks) {
    fail('chunkSegmentCount', `must be an Int32Array of length ${numChunks}`);
  }
  checkIndptr('chunkQueryIndptr', plan.chunkQueryIndptr, numChunks + 1, numPartials);
  if (!(plan.chunkQueries instanceof Int32Array) || plan.chunkQueries.length !== numPartials) {
    fail('chunkQueries', `must be an Int32Array of length ${numPartials}`);
  }
  checkIndptr('chunkMaskOffset', plan.chunkMaskOffset, numChunks + 1, plan.mask.length);
  if (!(plan.chunkFullyVisible instanceof Uint8Array) || plan.chunkFullyVisible.length !== numChunks) {
    fail('chunkFullyVisible', `must be a Uint8Array of length ${numChunks}`);
  }
  const numSlots = limits.numSlots ?? Number.MAX_SAFE_INTEGER;
  for (let chunk = 0; chunk < numChunks; chunk++) {
    const segments = plan.chunkSegmentCount[chunk]!;
    const queries = plan.chunkQueryIndptr[chunk + 1]! - plan.chunkQueryIndptr[chunk]!;
    const words = segments * Math.ceil(queries / 32);
    if (plan.chunkMaskOffset[chunk + 1]! - plan.chunkMaskOffset[chunk]! !== words) {
      fail('chunkMaskOffset', `gives chunk ${chunk} the wrong number of mask words (expected ${words})`);
    }
    for (let token = plan.chunkTokenIndptr[chunk]!; token < plan.chunkTokenIndptr[chunk + 1]!; token++) {
      const slot = plan.tokenSlots[token]!;
      if (slot < 0 || slot >= numSlots)
        fail('tokenSlots', `[${token}] is outside the KV storage (${numSlots} slots)`, slot);
      const segment = plan.tokenSegments[token]!;
      if (segment < 0 || segment >= segments)
        fail('tokenSegments', `[${token}] is outside chunk ${chunk}'s segments`, segment);
    }
    for (let entry = plan.chunkQueryIndptr[chunk]!; entry < plan.chunkQueryIndptr[chunk + 1]!; entry++) {
      const query = plan.chunkQueries[entry]!;
      if (query < 0 || query >= numQueries) fail('chunkQueries', `[${entry}] is not a query index`, query);
      if (entry > plan.chunkQueryIndptr[chunk]! && query <= plan.chunkQueries[entry - 1]!) {
        fail('chunkQueries', `must be strictly ascending within chunk ${chunk}`);
      }
    }
  }
  checkIndptr('queryPartialIndptr', plan.queryPartialIndptr, numQueries + 1, numPartials);
  if (!(plan.queryPartials instanceof Int32Array) || plan.queryPartials.length !== numPartials) {
    fail('queryPartials', `must be an Int32Array of length ${numPartials}`);
  }
  const seen = new Uint8Array(numPartials);
  for (let query = 0; query < numQueries; query++) {
    for (let entry = plan.queryPartialIndptr[query]!; entry < plan.queryPartialIndptr[query + 1]!; entry++) {
      const slot = plan.queryPartials[entry]!;
      if (slot < 0 || slot >= numPartials || seen[slot] === 1 || plan.chunkQueries[slot] !== query) {
        fail('queryPartials', `[${entry}] must be a partial slot of query ${query}, listed once`, slot);
      }
      seen[slot] = 1;
    }
  }
}
