import type { AttentionShape, PagedTreeView, PlanStrategy, TreeAttentionPlan, TreeQueries } from '@deft/core';
import { InvalidArgumentError, isDType, PLAN_STRATEGIES } from '@deft/core';
import { buildGroupedPlan } from './build-grouped-plan.js';
import { buildSequencePlan, sumPathLengths } from './build-sequence-plan.js';
import { autoChunkSize, DEFAULT_MAX_PARTIAL_RATIO, DEFAULT_TARGET_WORK_UNITS } from './chunk-size.js';
import { checkPlanIndex, layoutBytes } from './plan-memory.js';
import { buildTreeQueryLayout } from './tree-query-layout.js';

/** Options of {@link planTreeAttention}. */
export interface PlanTreeAttentionOptions {
  /** How KV is grouped with queries (default `'deft-flatten'`). */
  readonly strategy?: PlanStrategy;
  /** The attention shape the plan's IO model and default chunk size are computed for. */
  readonly shape: AttentionShape;
  /**
   * Tokens per chunk for `deft-flatten`, `deft-node-chunk` and `sequence` (ignored by `deft-node`).
   * Default: picked from the tree size, `targetWorkUnits` and `maxPartialRatio` (see `autoChunkSize`),
   * never below 32.
   */
  readonly chunkSize?: number;
  /** Work units `(kvHead, chunk)` to aim for when picking the chunk size (default `132 × 4`). */
  readonly targetWorkUnits?: number;
  /**
   * When picking the chunk size, keep the estimated partial-result bytes within this multiple of the
   * unique KV bytes (default 4; `Infinity` to ignore partial traffic). See `autoChunkSize`.
   */
  readonly maxPartialRatio?: number;
  /**
   * Bytes the planner may allocate for one plan, its scratch arrays included; a plan that needs more
   * throws a `CapacityError` before the arrays are allocated. Default: no budget (this package reads
   * nothing of the host; callers pass what they can spare). Plans beyond the plan format's 32-bit
   * indices (`2^31 - 1` tokens, partial states, mask words or slots) are refused either way.
   */
  readonly hostMemoryBudgetBytes?: number;
}

/**
 * Everything of {@link PlanTreeAttentionOptions} but the shape: how a caller that owns the model (a
 * decoding engine, a step runner) lets its user steer the planner. Passed through unchanged.
 */
export type PlannerOptions = Omit<PlanTreeAttentionOptions, 'shape'>;

function checkPositiveInteger(argument: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${argument} must be an integer >= 1`, {
      argument,
      expected: 'integer >= 1',
      actual: value,
    });
  }
  return value;
}

function checkShape(shape: unknown): AttentionShape {
  if (typeof shape !== 'object' || shape === null) {
    throw new InvalidArgumentError('options.shape is required: { numHeads, numKvHeads, headDim, kvDtype }', {
      argument: 'options.shape',
      expected: 'AttentionShape',
      actual: shape,
    });
  }
  const candidate = shape as AttentionShape;
  const numHeads = checkPositiveInteger('options.shape.numHeads', candidate.numHeads);
  const numKvHeads = checkPositiveInteger('options.shape.numKvHeads', candidate.numKvHeads);
  checkPositiveInteger('options.shape.headDim', candidate.headDim);
  if (numHeads % numKvHeads !== 0) {
    throw new InvalidArgumentError(
      `options.shape.numHeads (${numHeads}) must be a multiple of numKvHeads (${numKvHeads}) for grouped-query attention`,
      { argument: 'options.shape.numKvHeads', expected: `a divisor of ${numHeads}`, actual: numKvHeads },
    );
  }
  if (!isDType(candidate.kvDtype)) {
    throw new InvalidArgumentError("options.shape.kvDtype must be 'f32' or 'f16'", {
      argument: 'options.shape.kvDtype',
      expected: "'f32' | 'f16'",
      actual: candidate.kvDtype,
    });
  }
  return Object.freeze({ numHeads, numKvHeads, headDim: candidate.headDim, kvDtype: candidate.kvDtype });
}

/**
 * Plans one decoding step's tree attention: which KV tokens each chunk reads, which queries see them
 * (visibility bits per segment and query), and where the partial results go for the reduction.
 *
 * Query `i` is `(queries.nodes[i], queries.positions[i])`: it sees every token of the node's ancestors
 * and tokens `0 ..= position` of its own node. Nodes are cut into segments at query positions, so
 * visibility is exact per segment. Only tokens seen by at least one query are read.
 *
 * Strategies: `deft-flatten` (default) flattens the visible tree KV depth-first and cuts it into
 * near-equal chunks of at most `chunkSize` tokens (on page boundaries where possible), reading every
 * visible token exactly once; `deft-node` makes one chunk per node; `deft-node-chunk` splits each node
 * into chunks of at most `chunkSize` tokens; `sequence` is the baseline where each query reads its
 * whole path (one query per chunk).
 *
 * Deterministic: the same inputs give the same plan. Time and memory are linear in the tree, the
 * queries and the plan's size.
 *
 * @param view The paged tree (see {@link PagedTreeView}).
 * @param queries This step's queries (see {@link TreeQueries}).
 * @returns A plan in the `@deft/core` format, with its IO model for `options.shape`.
 * @throws InvalidArgumentError for a malformed view, an out-of-range query position, a bad shape,
 * strategy, chunk size or work-unit target.
 * @throws NotFoundError for a query on a node that is not in the view.
 * @throws CapacityError before allocating, when the plan would exceed its 32-bit indices (more than
 * `2^31 - 1` visible tokens, tokens read, partial states, mask words, or a slot beyond that) or
 * `hostMemoryBudgetBytes`; the message names the size and the limit.
 * @example
 * ```ts
 * const plan = planTreeAttention(cache.view(), { nodes: Int32Array.of(leaf), positions: Int32Array.of(last) }, {
 *   shape: { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' },
 * });
 * console.log(plan.io.kvBytesRead / plan.io.uniqueKvBytes); // 1 for deft-flatten
 * ```
 */
export function planTreeAttention(
  view: PagedTreeView,
  queries: TreeQueries,
  options: PlanTreeAttentionOptions,
): TreeAttentionPlan {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options must be an object with at least { shape }', {
      argument: 'options',
      expected:
        '{ shape, strategy?, chunkSize?, targetWorkUnits?, maxPartialRatio?, hostMemoryBudgetBytes? }',
      actual: options,
    });
  }
  const strategy = options.strategy ?? 'deft-flatten';
  if (!PLAN_STRATEGIES.includes(strategy)) {
    throw new InvalidArgumentError(`options.strategy must be one of ${PLAN_STRATEGIES.join(', ')}`, {
      argument: 'options.strategy',
      expected: PLAN_STRATEGIES,
      actual: strategy,
    });
  }
  const shape = checkShape(options.shape);
  const explicitChunkSize =
    options.chunkSize === undefined
      ? undefined
      : checkPositiveInteger('options.chunkSize', options.chunkSize);
  const targetWorkUnits =
    options.targetWorkUnits === undefined
      ? DEFAULT_TARGET_WORK_UNITS
      : checkPositiveInteger('options.targetWorkUnits', options.targetWorkUnits);

  const maxPartialRatio = options.maxPartialRatio ?? DEFAULT_MAX_PARTIAL_RATIO;
  if (typeof maxPartialRatio !== 'number' || !(maxPartialRatio > 0)) {
    throw new InvalidArgumentError('options.maxPartialRatio must be a number > 0 (Infinity allowed)', {
      argument: 'options.maxPartialRatio',
      expected: '> 0',
      actual: maxPartialRatio,
    });
  }

  const hostMemoryBudgetBytes = options.hostMemoryBudgetBytes ?? Number.POSITIVE_INFINITY;
  if (typeof hostMemoryBudgetBytes !== 'number' || !(hostMemoryBudgetBytes > 0)) {
    throw new InvalidArgumentError('options.hostMemoryBudgetBytes must be a number > 0 (Infinity allowed)', {
      argument: 'options.hostMemoryBudgetBytes',
      expected: '> 0',
      actual: hostMemoryBudgetBytes,
    });
  }

  const layout = buildTreeQueryLayout(view, queries);
  // The layout's columns are as long as the arrays of the view and the queries (which the caller holds), so
  // they are counted in the budget but not checked before they exist.
  const memory = {
    budgetBytes: hostMemoryBudgetBytes,
    baseBytes: layoutBytes(layout.present.length, layout.numQueries),
  };
  checkPlanIndex('visible tokens', layout.uniqueTokens, 'plan fewer tokens per step');
  switch (strategy) {
    case 'sequence': {
      const pathTokens = sumPathLengths(view, queries);
      checkPlanIndex('tokens read (the sum of the query paths)', pathTokens, 'plan fewer queries per step');
      const chunkSize =
        explicitChunkSize ?? autoChunkSize(pathTokens, shape, { targetWorkUnits, maxPartialRatio });
      return buildSequencePlan(view, layout, queries, chunkSize, shape, memory);
    }
    case 'deft-node':
      return buildGroupedPlan(view, layout, strategy, Number.POSITIVE_INFINITY, true, shape, memory);
    default: {
      const queriesPerToken = layout.uniqueTokens === 0 ? 1 : layout.visibilityPairs / layout.uniqueTokens;
      const chunkSize =
        explicitChunkSize ??
        autoChunkSize(layout.uniqueTokens, shape, { targetWorkUnits, queriesPerToken, maxPartialRatio });
      return buildGroupedPlan(
        view,
        layout,
        strategy,
        chunkSize,
        strategy === 'deft-node-chunk',
        shape,
        memory,
      );
    }
  }
}
