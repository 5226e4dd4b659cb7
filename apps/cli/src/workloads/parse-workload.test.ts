import { InvalidArgumentError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { BUILTIN_WORKLOADS } from './builtin.js';
import { DEFAULT_PAGE_SIZE, parseWorkload, parseWorkloadJson, workloadQueries } from './parse-workload.js';

const valid = {
  name: 'tiny',
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  dtype: 'f32',
  seed: 7,
  nodes: [
    { parent: -1, tokens: 40 },
    { parent: 0, tokens: 3 },
    { parent: 0, tokens: 1 },
    { parent: 1, tokens: 17 },
  ],
};

function errorOf(value: unknown): InvalidArgumentError {
  try {
    parseWorkload(value);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected an InvalidArgumentError');
}

function withField(field: string, value: unknown): Record<string, unknown> {
  return { ...valid, [field]: value };
}

function withNodes(nodes: unknown[]): Record<string, unknown> {
  return { ...valid, nodes };
}

describe('parseWorkload', () => {
  it('accepts a valid workload and fills the default page size', () => {
    const workload = parseWorkload(valid);
    expect(workload.pageSize).toBe(DEFAULT_PAGE_SIZE);
    expect(workload.nodes).toHaveLength(4);
    expect(workload.queries).toBeUndefined();
    // Default queries: every leaf at its last token, in node order.
    expect(workloadQueries(workload)).toEqual([
      [2, 0],
      [3, 16],
    ]);
  });

  it('keeps explicit queries and page size', () => {
    const workload = parseWorkload({
      ...valid,
      pageSize: 1,
      queries: [
        [0, 39],
        [3, 0],
      ],
    });
    expect(workload.pageSize).toBe(1);
    expect(workloadQueries(workload)).toEqual([
      [0, 39],
      [3, 0],
    ]);
  });

  it('accepts every built-in workload', () => {
    for (const builtin of BUILTIN_WORKLOADS)
      expect(parseWorkload(JSON.parse(JSON.stringify(builtin)))).toEqual(builtin);
  });

  const cases: [string, unknown, string, RegExp][] = [
    ['not an object', [1, 2], 'workload', /must be a JSON object/],
    ['missing name', { ...valid, name: undefined }, 'name', /name must be a non-empty string/],
    ['missing heads', { ...valid, heads: undefined }, 'heads', /heads is missing/],
    ['non-integer headDim', withField('headDim', 12.5), 'headDim', /headDim must be an integer/],
    ['string heads', withField('heads', '32'), 'heads', /heads must be an integer/],
    ['kvHeads not dividing heads', withField('kvHeads', 3), 'kvHeads', /must divide heads/],
    ['bad dtype', withField('dtype', 'bf16'), 'dtype', /dtype must be "f32" or "f16"/],
    ['zero page size', withField('pageSize', 0), 'pageSize', /pageSize must be an integer 1/],
    ['missing seed', { ...valid, seed: undefined }, 'seed', /seed is missing/],
    ['unknown field', withField('kv_heads', 2), 'kv_heads', /not a workload field/],
    ['nodes not an array', withField('nodes', {}), 'nodes', /must be an array/],
    ['no nodes', withNodes([]), 'nodes', /at least the root/],
    ['root with a parent', withNodes([{ parent: 0, tokens: 3 }]), 'nodes[0].parent', /must be -1/],
    [
      'second root',
      withNodes([
        { parent: -1, tokens: 3 },
        { parent: -1, tokens: 3 },
      ]),
      'nodes[1].parent',
      /only node 0/,
    ],
    ['missing tokens', withNodes([{ parent: -1 }]), 'nodes[0].tokens', /is missing/],
    [
      'missing parent',
      withNodes([{ parent: -1, tokens: 1 }, { tokens: 1 }]),
      'nodes[1].parent',
      /is missing/,
    ],
    ['fractional tokens', withNodes([{ parent: -1, tokens: 2.5 }]), 'nodes[0].tokens', /integer >= 1/],
    [
      'zero tokens',
      withNodes([
        { parent: -1, tokens: 1 },
        { parent: 0, tokens: 0 },
      ]),
      'nodes[1].tokens',
      /integer >= 1/,
    ],
    [
      'parent out of range',
      withNodes([
        { parent: -1, tokens: 1 },
        { parent: 5, tokens: 1 },
      ]),
      'nodes[1].parent',
      /not a node index/,
    ],
    [
      'node field typo',
      withNodes([{ parent: -1, tokens: 1, token: 2 }]),
      'nodes[0].token',
      /not a node field/,
    ],
    [
      'parent after its child',
      withNodes([
        { parent: -1, tokens: 1 },
        { parent: 2, tokens: 1 },
        { parent: 0, tokens: 1 },
      ]),
      'nodes[1].parent',
      /comes after node 1/,
    ],
    [
      'a cycle',
      withNodes([
        { parent: -1, tokens: 1 },
        { parent: 2, tokens: 1 },
        { parent: 1, tokens: 1 },
      ]),
      'nodes[1].parent',
      /cycle \(1 -> 2 -> 1\)/,
    ],
    [
      'a self loop',
      withNodes([
        { parent: -1, tokens: 1 },
        { parent: 1, tokens: 1 },
      ]),
      'nodes[1].parent',
      /cycle/,
    ],
    ['empty queries', withField('queries', []), 'queries', /must not be empty/],
    ['query not a pair', withField('queries', [[1]]), 'queries[0]', /pair/],
    ['query node out of range', withField('queries', [[9, 0]]), 'queries[0][0]', /node index/],
    [
      'query position past the node',
      withField('queries', [[1, 3]]),
      'queries[0][1]',
      /position inside node 1 \(0 \.\. 2\)/,
    ],
    ['negative query position', withField('queries', [[1, -1]]), 'queries[0][1]', /position/],
  ];

  it.each(cases)('rejects %s with a one-line error naming the field', (_, value, field, message) => {
    const error = errorOf(value);
    expect(error.argument).toBe(field);
    expect(error.message).toMatch(message);
    expect(error.message.startsWith(field)).toBe(true);
    expect(error.message).not.toContain('\n');
  });
});

describe('parseWorkloadJson', () => {
  it('reports invalid JSON on one line', () => {
    expect(() => parseWorkloadJson('{ "name": ')).toThrow(/workload is not valid JSON/);
  });

  it('parses a workload file', () => {
    expect(parseWorkloadJson(JSON.stringify(valid)).name).toBe('tiny');
  });
});
