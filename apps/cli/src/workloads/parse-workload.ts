import { InvalidArgumentError } from '@deft/core';
import { describeValue } from '@deft/core/validate';
import type { Workload, WorkloadNode } from './workload.js';

/** Tokens per page when a workload does not say. */
export const DEFAULT_PAGE_SIZE = 16;

const KNOWN_FIELDS = new Set([
  'name',
  'description',
  'heads',
  'kvHeads',
  'headDim',
  'dtype',
  'pageSize',
  'seed',
  'nodes',
  'queries',
]);

/** Largest head count, head dimension or page size a workload may ask for (guards against typos). */
const MAX_DIMENSION = 65_536;
/**
 * Largest number of tokens of a workload tree the format accepts (sums stay exact); what fits in memory
 * is checked before allocating (`ensureWorkloadFits`, a `CapacityError`).
 */
const MAX_TREE_TOKENS = 2 ** 52;

/**
 * Checks a parsed JSON value against the workload format and returns it as a {@link Workload}:
 * `{ name, heads, kvHeads, headDim, dtype: "f32" | "f16", pageSize?, seed, nodes: [{ parent, tokens }],
 * queries?: [[nodeIndex, position]] }`. Node 0 is the root (`parent: -1`); every other node's parent
 * comes before it. Every token count is an integer >= 1; `queries` default to every leaf at its last token.
 *
 * @throws {InvalidArgumentError} with `argument` set to the offending field (e.g. `nodes[3].parent`) and
 *   a one-line message saying what is wrong.
 * @example
 * ```ts
 * const workload = parseWorkload({ name: 'tiny', heads: 4, kvHeads: 2, headDim: 16, dtype: 'f32', seed: 1,
 *   nodes: [{ parent: -1, tokens: 10 }, { parent: 0, tokens: 3 }] });
 * ```
 */
export function parseWorkload(value: unknown): Workload {
  if (!isRecord(value)) fail('workload', 'must be a JSON object', 'object', value);
  for (const key of Object.keys(value)) {
    if (!KNOWN_FIELDS.has(key)) {
      fail(
        key,
        `is not a workload field (expected one of ${[...KNOWN_FIELDS].join(', ')})`,
        'no such field',
        key,
      );
    }
  }
  const name = value.name;
  if (typeof name !== 'string' || name.trim() === '')
    fail('name', 'must be a non-empty string', 'string', name);
  const heads = integerField(value, 'heads', 1, MAX_DIMENSION);
  const kvHeads = integerField(value, 'kvHeads', 1, MAX_DIMENSION);
  if (heads % kvHeads !== 0) {
    fail(
      'kvHeads',
      `must divide heads (${heads}) for grouped-query attention`,
      `a divisor of ${heads}`,
      kvHeads,
    );
  }
  const headDim = integerField(value, 'headDim', 1, MAX_DIMENSION);
  const dtype = value.dtype;
  if (dtype !== 'f32' && dtype !== 'f16') fail('dtype', 'must be "f32" or "f16"', '"f32" | "f16"', dtype);
  const pageSize =
    value.pageSize === undefined ? DEFAULT_PAGE_SIZE : integerField(value, 'pageSize', 1, MAX_DIMENSION);
  const seed = integerField(value, 'seed', 0, 2 ** 32 - 1);
  const nodes = parseNodes(value.nodes);
  const queries = value.queries === undefined ? undefined : parseQueries(value.queries, nodes);
  const description = value.description;
  if (description !== undefined && typeof description !== 'string') {
    fail('description', 'must be a string', 'string', description);
  }
  return {
    name: name.trim(),
    heads,
    kvHeads,
    headDim,
    dtype,
    pageSize,
    seed,
    nodes,
    ...(queries === undefined ? {} : { queries }),
  };
}

/**
 * Parses the text of a workload file.
 *
 * @throws {InvalidArgumentError} when the text is not JSON (`argument` is `workload`) or not a workload.
 * @example
 * ```ts
 * const workload = parseWorkloadJson(readFileSync('tree.json', 'utf8'));
 * ```
 */
export function parseWorkloadJson(text: string): Workload {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new InvalidArgumentError(`workload is not valid JSON: ${reason}`, {
      argument: 'workload',
      expected: 'JSON',
      actual: 'unparseable text',
      cause: error,
    });
  }
  return parseWorkload(value);
}

/** The queries of a workload: its explicit ones, or every leaf at its last token (in node order). */
export function workloadQueries(workload: Workload): readonly (readonly [number, number])[] {
  if (workload.queries !== undefined) return workload.queries;
  const hasChild = new Uint8Array(workload.nodes.length);
  for (const node of workload.nodes) if (node.parent >= 0) hasChild[node.parent] = 1;
  const queries: [number, number][] = [];
  workload.nodes.forEach((node, index) => {
    if (hasChild[index] === 0) queries.push([index, node.tokens - 1]);
  });
  return queries;
}

function parseNodes(value: unknown): WorkloadNode[] {
  if (!Array.isArray(value)) fail('nodes', 'must be an array of { parent, tokens }', 'array', value);
  if (value.length === 0) fail('nodes', 'must hold at least the root node', 'non-empty array', value);
  const count = value.length;
  const parents = new Int32Array(count);
  const nodes: WorkloadNode[] = [];
  let treeTokens = 0;
  value.forEach((entry: unknown, index) => {
    const field = `nodes[${index}]`;
    if (!isRecord(entry)) fail(field, 'must be an object { parent, tokens }', 'object', entry);
    for (const key of Object.keys(entry)) {
      if (key !== 'parent' && key !== 'tokens')
        fail(`${field}.${key}`, 'is not a node field (parent, tokens)', 'no such field', key);
    }
    if (entry.parent === undefined) fail(`${field}.parent`, 'is missing', 'integer', undefined);
    if (entry.tokens === undefined) fail(`${field}.tokens`, 'is missing', 'integer >= 1', undefined);
    const parent = entry.parent;
    if (typeof parent !== 'number' || !Number.isInteger(parent)) {
      fail(`${field}.parent`, 'must be an integer node index (-1 for the root)', 'integer', parent);
    }
    if (index === 0 && parent !== -1) fail(`${field}.parent`, 'must be -1: node 0 is the root', -1, parent);
    if (index > 0 && parent === -1)
      fail(`${field}.parent`, 'is -1 but only node 0 may be the root', `0 .. ${index - 1}`, parent);
    if (parent < -1 || parent >= count) {
      fail(
        `${field}.parent`,
        `is ${parent}, not a node index (0 .. ${count - 1})`,
        `0 .. ${count - 1}`,
        parent,
      );
    }
    const tokens = entry.tokens;
    if (typeof tokens !== 'number' || !Number.isInteger(tokens) || tokens < 1) {
      fail(`${field}.tokens`, 'must be an integer >= 1', 'integer >= 1', tokens);
    }
    treeTokens += tokens;
    if (treeTokens > MAX_TREE_TOKENS)
      fail(
        `${field}.tokens`,
        `brings the tree above ${MAX_TREE_TOKENS} tokens`,
        `<= ${MAX_TREE_TOKENS} in all`,
        tokens,
      );
    parents[index] = parent;
    nodes.push({ parent, tokens });
  });
  // Cycles first (they are the more useful message), then the parent-before-child order.
  const state = new Uint8Array(count); // 0 unvisited, 1 on the current walk, 2 reaches the root
  state[0] = 2;
  for (let start = 1; start < count; start++) {
    const walk: number[] = [];
    let node = start;
    while (state[node] === 0) {
      state[node] = 1;
      walk.push(node);
      node = parents[node]!;
    }
    if (state[node] === 1) {
      const cycle = walk.slice(walk.indexOf(node));
      fail(
        `nodes[${node}].parent`,
        `forms a cycle (${[...cycle, node].join(' -> ')}): every node must lead to the root`,
        'an acyclic tree',
        parents[node],
      );
    }
    for (const visited of walk) state[visited] = 2;
  }
  for (let index = 1; index < count; index++) {
    const parent = parents[index]!;
    if (parent >= index) {
      fail(
        `nodes[${index}].parent`,
        `is ${parent}, which comes after node ${index}: list every parent before its children`,
        `0 .. ${index - 1}`,
        parent,
      );
    }
  }
  return nodes;
}

function parseQueries(value: unknown, nodes: readonly WorkloadNode[]): (readonly [number, number])[] {
  if (!Array.isArray(value))
    fail('queries', 'must be an array of [nodeIndex, position] pairs', 'array', value);
  if (value.length === 0)
    fail(
      'queries',
      'must not be empty (leave it out for every leaf at its last token)',
      'non-empty array',
      value,
    );
  return value.map((entry: unknown, index) => {
    const field = `queries[${index}]`;
    if (!Array.isArray(entry) || entry.length !== 2)
      fail(field, 'must be a [nodeIndex, position] pair', '[integer, integer]', entry);
    const [node, position] = entry as unknown[];
    if (typeof node !== 'number' || !Number.isInteger(node) || node < 0 || node >= nodes.length) {
      fail(
        `${field}[0]`,
        `must be a node index (0 .. ${nodes.length - 1})`,
        `0 .. ${nodes.length - 1}`,
        node,
      );
    }
    const tokens = nodes[node]!.tokens;
    if (typeof position !== 'number' || !Number.isInteger(position) || position < 0 || position >= tokens) {
      fail(
        `${field}[1]`,
        `must be a position inside node ${node} (0 .. ${tokens - 1})`,
        `0 .. ${tokens - 1}`,
        position,
      );
    }
    return [node, position] as const;
  });
}

function integerField(
  record: Record<string, unknown>,
  field: string,
  minimum: number,
  maximum: number,
): number {
  const value = record[field];
  if (value === undefined) fail(field, 'is missing', `integer ${minimum} .. ${maximum}`, value);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum) {
    fail(field, `must be an integer ${minimum} .. ${maximum}`, `integer ${minimum} .. ${maximum}`, value);
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(field: string, problem: string, expected: unknown, actual: unknown): never {
  const got = actual === undefined ? '' : `, got ${describeValue(actual)}`;
  throw new InvalidArgumentError(`${field} ${problem}${problem.startsWith('is missing') ? '' : got}`, {
    argument: field,
    expected,
    actual,
  });
}
