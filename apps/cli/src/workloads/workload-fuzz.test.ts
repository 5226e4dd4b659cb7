// Hostile and damaged workload files: seeded mutations and truncations of valid ones, fed to the parser
// and, when they parse, through the memory check, the paged layout and the planner. Each case must end in a
// valid result or a typed error (InvalidArgumentError from the parser, UsageError from the file reader,
// CapacityError from the memory checks) within a bounded time, and the whole run within a bounded memory.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CapacityError, InvalidArgumentError } from '@deft/core';
import { planTreeAttention } from '@deft/planner';
import { SeededRandom } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { randomAttentionInputs } from '../attention/random-inputs.js';
import { UsageError } from '../errors/usage-error.js';
import { buildWorkload } from './build-workload.js';
import { BUILTIN_WORKLOADS } from './builtin.js';
import { parseWorkloadJson } from './parse-workload.js';
import { resolveWorkload } from './resolve-workload.js';
import { ensureWorkloadFits } from './workload-memory.js';
import { summarizeWorkload } from './workload-summary.js';

/**
 * The slowest a single case may be. Sane cases take well under a millisecond; the bound only catches work
 * sized from a hostile number (a token count of 2^52 walked token by token), with room for a busy machine.
 */
const CASE_LIMIT_MS = 2000;
/** Host memory one case may use beyond the parsed text: the memory check and the planner both get it. */
const CASE_BUDGET_BYTES = 32 * 2 ** 20;
/** Peak resident memory the whole run may add to the test process. */
const RUN_LIMIT_BYTES = 512 * 2 ** 20;

/** Numbers and values a hostile writer puts in a field. */
const HOSTILE_VALUES: readonly unknown[] = [
  0,
  -0,
  -1,
  1,
  2,
  3,
  1.5,
  1e-300,
  65_536,
  65_537,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 52,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  1e308,
  -1e308,
  '16',
  '',
  'f16',
  null,
  true,
  [],
  {},
  [[]],
  [0, 0],
  [-1, 0],
  { parent: -1, tokens: 1 },
];
/** Characters a damaged file gains: JSON syntax, digits, and bytes that are not text. */
const NOISE = '{}[]",:-+.0123456789eEtrufalsn \n\t\\\u0000\u00ff\ufffd';

/** Small valid workloads with every optional field, and the built-ins as their JSON files. */
function baseWorkloads(): string[] {
  const tiny = {
    name: 'tiny',
    description: 'a prompt, two branches and a speculative leaf',
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    dtype: 'f32',
    pageSize: 4,
    seed: 7,
    nodes: [
      { parent: -1, tokens: 40 },
      { parent: 0, tokens: 3 },
      { parent: 0, tokens: 1 },
      { parent: 1, tokens: 17 },
    ],
    queries: [
      [2, 0],
      [3, 16],
      [3, 4],
      [1, 2],
    ],
  };
  const chain = {
    name: 'chain',
    heads: 8,
    kvHeads: 8,
    headDim: 8,
    dtype: 'f16',
    seed: 1,
    nodes: Array.from({ length: 40 }, (_, index) => ({ parent: index - 1, tokens: 1 + (index % 5) })),
  };
  return [tiny, chain, ...BUILTIN_WORKLOADS].map((workload) => JSON.stringify(workload, null, 1));
}

/** A JSON value's mutable slots: `[container, key]` pairs, found by a walk over the parsed file. */
function slotsOf(value: unknown): [Record<string | number, unknown>, string | number][] {
  const slots: [Record<string | number, unknown>, string | number][] = [];
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const container = node as Record<string | number, unknown>;
    const keys = Array.isArray(node) ? node.map((_, index) => index) : Object.keys(node);
    for (const key of keys) {
      slots.push([container, key]);
      visit(container[key]);
    }
  };
  visit(value);
  return slots;
}

/** A damaged copy of a workload file's text. */
function mutate(base: string, random: SeededRandom): string {
  const kind = random.integer(0, 5);
  if (kind === 0) return base.slice(0, random.integer(0, base.length - 1));
  if (kind === 1) {
    const characters = [...base];
    for (let edit = random.integer(1, 4); edit > 0; edit--) {
      const at = random.integer(0, characters.length - 1);
      const noise = NOISE[random.integer(0, NOISE.length - 1)]!;
      const how = random.integer(0, 2);
      if (how === 0) characters[at] = noise;
      else if (how === 1) characters.splice(at, 0, noise);
      else characters.splice(at, 1);
    }
    return characters.join('');
  }
  if (kind === 5) return hostileShape(random);
  const value = JSON.parse(base) as Record<string, unknown>;
  const slots = slotsOf(value);
  for (let edit = random.integer(1, 3); edit > 0; edit--) {
    const [container, key] = random.pick(slots);
    if (kind === 2) container[key] = random.pick(HOSTILE_VALUES);
    else if (kind === 3) {
      if (Array.isArray(container)) container.splice(Number(key), 1);
      else if (random.chance(0.5)) delete container[key];
      else container[`${String(key)}X`] = container[key];
    } else {
      // Grow: repeat an array's entry (a node, a query) many times, or nest a value deeply.
      const grown = container[key];
      if (Array.isArray(container) && random.chance(0.7)) {
        const copies = random.integer(1, 3000);
        for (let copy = 0; copy < copies; copy++) container.push(structuredClone(grown));
      } else {
        let nested: unknown = grown;
        for (let level = random.integer(1, 200); level > 0; level--) nested = [nested];
        container[key] = nested;
      }
    }
  }
  return JSON.stringify(value);
}

/** Files no writer of the format would produce: deep nesting, huge arrays and strings, bare values. */
function hostileShape(random: SeededRandom): string {
  const depth = random.integer(1, 50_000);
  switch (random.integer(0, 5)) {
    case 0:
      return `{"name":"deep","nodes":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    case 1:
      return `{"name":"open","nodes":${'['.repeat(depth)}`;
    case 2:
      return JSON.stringify({
        name: 'x'.repeat(random.integer(1, 1_000_000)),
        heads: 1,
        kvHeads: 1,
        headDim: 1,
        dtype: 'f32',
        seed: 0,
        nodes: [{ parent: -1, tokens: 1 }],
      });
    case 3:
      return JSON.stringify({
        name: 'wide',
        heads: 2,
        kvHeads: 1,
        headDim: 4,
        dtype: 'f32',
        seed: 0,
        nodes: [{ parent: -1, tokens: random.pick([1, 2 ** 20, 2 ** 31, 2 ** 52]) }],
        queries: Array.from({ length: random.integer(1, 100_000) }, () => [0, 0]),
      });
    case 4:
      return random.pick(['null', '[]', '""', '0', 'true', '{}', '\ufeff{}', '', ' ']);
    default:
      return JSON.stringify({
        name: 'siblings',
        heads: 32,
        kvHeads: 8,
        headDim: 128,
        dtype: 'f16',
        seed: 0,
        nodes: [
          // 2^20 tokens fit every index but not the case's memory budget (about 10 GB of K and V).
          { parent: -1, tokens: random.pick([1, 1000, 2 ** 20, 2 ** 24]) },
          ...Array.from({ length: random.integer(1, 50_000) }, () => ({ parent: 0, tokens: 1 })),
        ],
      });
  }
}

type Outcome = 'valid' | 'parse' | 'capacity';

/** The path of a workload through `deft attn`: parse, check its memory, lay it out, make Q/K/V, plan. */
function runWorkload(text: string): Outcome {
  let workload: ReturnType<typeof parseWorkloadJson>;
  try {
    workload = parseWorkloadJson(text);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error)) return 'parse';
    throw error;
  }
  try {
    summarizeWorkload(workload);
    ensureWorkloadFits(workload, { budgetBytes: CASE_BUDGET_BYTES });
    const built = buildWorkload(workload);
    const inputs = randomAttentionInputs(built);
    expect(inputs.q.length).toBe(built.queries.nodes.length * workload.heads * workload.headDim);
    const plan = planTreeAttention(built.view, built.queries, {
      shape: built.shape,
      hostMemoryBudgetBytes: CASE_BUDGET_BYTES,
    });
    expect(plan.numQueries).toBe(built.queries.nodes.length);
    return 'valid';
  } catch (error) {
    if (CapacityError.isInstance(error)) return 'capacity';
    throw error;
  }
}

function timed<T>(label: string, work: () => T): T {
  const started = performance.now();
  let result: T;
  try {
    result = work();
  } catch (error) {
    throw new Error(
      `${label}: expected a valid workload or a typed error, got ${(error as Error)?.stack ?? error}`,
    );
  }
  expect(performance.now() - started, label).toBeLessThan(CASE_LIMIT_MS);
  return result;
}

describe('workload files under mutation and truncation', () => {
  const directory = mkdtempSync(path.join(tmpdir(), 'deft-workload-fuzz-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));
  const bases = baseWorkloads();

  it('every base parses, fits and plans', () => {
    for (const base of bases) expect(['valid', 'capacity']).toContain(runWorkload(base));
    expect(runWorkload(bases[0]!)).toBe('valid');
  });

  it('4000 damaged files end in a valid plan or a typed error, each quickly, in bounded memory', () => {
    const random = new SeededRandom(15_004);
    const counts: Record<Outcome, number> = { valid: 0, parse: 0, capacity: 0 };
    const peakBefore = process.resourceUsage().maxRSS * 1024;
    for (let index = 0; index < 4000; index++) {
      const text = mutate(random.pick(bases), random);
      counts[timed(`case ${index}`, () => runWorkload(text))]++;
    }
    const grown = process.resourceUsage().maxRSS * 1024 - peakBefore;
    expect(grown, `peak resident memory grew by ${grown} bytes`).toBeLessThan(RUN_LIMIT_BYTES);
    // The mutations reach every outcome, and mostly the parser's checks.
    expect(counts.parse).toBeGreaterThan(2000);
    expect(counts.valid).toBeGreaterThan(100);
    expect(counts.capacity).toBeGreaterThan(20);
  });

  it('300 damaged files read from disk end in a workload or a one-line UsageError', () => {
    const random = new SeededRandom(15_005);
    mkdirSync(directory, { recursive: true });
    let refused = 0;
    for (let index = 0; index < 300; index++) {
      const bytes = Buffer.from(mutate(random.pick(bases), random), 'utf8');
      // Some files are not UTF-8 at all.
      if (random.chance(0.2))
        bytes[random.integer(0, Math.max(0, bytes.length - 1))] = random.pick([0x80, 0xc3, 0xff]);
      const file = path.join(directory, `case-${index}.json`);
      writeFileSync(file, bytes);
      const outcome = timed(`file ${index}`, () => {
        try {
          return resolveWorkload(file, { cwd: directory });
        } catch (error) {
          if (UsageError.isInstance(error)) return error;
          throw error;
        }
      });
      if (UsageError.isInstance(outcome)) {
        refused++;
        expect(outcome.message, `file ${index}`).toMatch(/^workload .*case-\d+\.json: /);
        expect(outcome.message.length, `file ${index}`).toBeLessThan(2000);
      }
    }
    expect(refused).toBeGreaterThan(150);
  });
});
