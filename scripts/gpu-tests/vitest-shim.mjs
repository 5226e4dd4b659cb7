// A stand-in for the parts of `vitest` the `*.gpu.test.ts` files use, so a test file bundled on its own
// (bundle-gpu-tests.sh aliases `vitest` to this file) runs on a GPU machine that has Node but no
// node_modules. Tests run in declaration order once the module has loaded; the process exits 1 when
// any test failed. Results go to stdout, one line per test, and as JSON to $GPU_TEST_JSON when set.

import { writeFileSync } from 'node:fs';
import { inspect, isDeepStrictEqual } from 'node:util';

const root = { name: '', skip: false, children: [], afterAll: [], beforeAll: [] };
let current = root;

function suite(name, body, skip = false) {
  const node = { name, skip: skip || current.skip, children: [], afterAll: [], beforeAll: [] };
  current.children.push(node);
  const parent = current;
  current = node;
  try {
    body();
  } finally {
    current = parent;
  }
}

export function describe(name, body) {
  suite(name, body);
}
describe.skipIf = (condition) => (name, body) => suite(name, body, Boolean(condition));
describe.skip = (name, body) => suite(name, body, true);

export function it(name, body) {
  current.children.push({ name, body, skip: current.skip });
}
it.skipIf = (condition) => (name, body) =>
  current.children.push({ name, body, skip: current.skip || Boolean(condition) });
it.skip = (name, body) => current.children.push({ name, body, skip: true });
export const test = it;

export function afterAll(body) {
  current.afterAll.push(body);
}
export function beforeAll(body) {
  current.beforeAll.push(body);
}

class AssertionError extends Error {}

function show(value) {
  return inspect(value, { depth: 3, maxArrayLength: 12, breakLength: 120 });
}

function matchers(actual, negate) {
  const check = (passed, message) => {
    if (passed === negate) throw new AssertionError(`${negate ? 'not: ' : ''}${message}`);
  };
  const partial = (object, pattern) =>
    typeof pattern !== 'object' || pattern === null
      ? isDeepStrictEqual(object, pattern)
      : Object.entries(pattern).every(([key, value]) => object != null && partial(object[key], value));
  return {
    toBe: (expected) =>
      check(Object.is(actual, expected), `expected ${show(actual)} to be ${show(expected)}`),
    toEqual: (expected) =>
      check(isDeepStrictEqual(actual, expected), `expected ${show(actual)} to equal ${show(expected)}`),
    toStrictEqual: (expected) =>
      check(isDeepStrictEqual(actual, expected), `expected ${show(actual)} to equal ${show(expected)}`),
    toMatchObject: (expected) =>
      check(partial(actual, expected), `expected ${show(actual)} to match ${show(expected)}`),
    toBeLessThan: (bound) => check(actual < bound, `expected ${show(actual)} < ${show(bound)}`),
    toBeLessThanOrEqual: (bound) => check(actual <= bound, `expected ${show(actual)} <= ${show(bound)}`),
    toBeGreaterThan: (bound) => check(actual > bound, `expected ${show(actual)} > ${show(bound)}`),
    toBeGreaterThanOrEqual: (bound) => check(actual >= bound, `expected ${show(actual)} >= ${show(bound)}`),
    toBeCloseTo: (expected, digits = 2) =>
      check(
        Math.abs(actual - expected) < 10 ** -digits / 2,
        `expected ${show(actual)} close to ${show(expected)}`,
      ),
    toHaveLength: (length) =>
      check(actual?.length === length, `expected length ${actual?.length} to be ${length}`),
    toContain: (item) => check(actual?.includes(item), `expected ${show(actual)} to contain ${show(item)}`),
    toMatch: (pattern) =>
      check(
        typeof pattern === 'string' ? String(actual).includes(pattern) : pattern.test(String(actual)),
        `expected ${show(actual)} to match ${pattern}`,
      ),
    toBeInstanceOf: (type) => check(actual instanceof type, `expected ${show(actual)} to be a ${type?.name}`),
    toBeDefined: () => check(actual !== undefined, 'expected a defined value'),
    toBeUndefined: () => check(actual === undefined, `expected undefined, got ${show(actual)}`),
    toBeTruthy: () => check(Boolean(actual), `expected ${show(actual)} to be truthy`),
    toBeFalsy: () => check(!actual, `expected ${show(actual)} to be falsy`),
    toBeNaN: () => check(Number.isNaN(actual), `expected ${show(actual)} to be NaN`),
    toThrow: (expected) => {
      let thrown;
      try {
        actual();
      } catch (error) {
        thrown = error ?? new Error('undefined thrown');
      }
      check(
        thrown !== undefined && errorMatches(thrown, expected),
        `expected a throw matching ${show(expected)}, got ${show(thrown)}`,
      );
    },
  };
}

function errorMatches(error, expected) {
  if (expected === undefined) return true;
  if (typeof expected === 'function') return error instanceof expected;
  if (expected instanceof RegExp) return expected.test(String(error?.message ?? error));
  return String(error?.message ?? error).includes(String(expected));
}

export function expect(actual) {
  const positive = matchers(actual, false);
  return {
    ...positive,
    not: matchers(actual, true),
    rejects: {
      toThrow: async (expected) => {
        let thrown;
        try {
          await actual;
        } catch (error) {
          thrown = error ?? new Error('undefined thrown');
        }
        if (thrown === undefined || !errorMatches(thrown, expected)) {
          throw new AssertionError(`expected a rejection matching ${show(expected)}, got ${show(thrown)}`);
        }
      },
    },
    resolves: new Proxy(
      {},
      {
        get:
          (_, name) =>
          async (...args) =>
            matchers(await actual, false)[name](...args),
      },
    ),
  };
}

const results = [];

async function run(node, path) {
  const here = node.name === '' ? path : [...path, node.name];
  let setupError;
  if (!node.skip) {
    try {
      for (const hook of node.beforeAll) await hook();
    } catch (error) {
      setupError = error;
    }
  }
  for (const child of node.children) {
    if (child.children !== undefined) {
      await run(child, here);
      continue;
    }
    const name = [...here, child.name].join(' > ');
    if (child.skip) {
      results.push({ name, status: 'skipped' });
      console.log(`- ${name} (skipped)`);
      continue;
    }
    if (setupError !== undefined) {
      results.push({
        name,
        status: 'failed',
        error: `beforeAll failed: ${String(setupError?.stack ?? setupError)}`,
      });
      console.log(`✗ ${name} (beforeAll failed: ${String(setupError?.message ?? setupError)})`);
      continue;
    }
    const started = performance.now();
    try {
      await child.body();
      results.push({ name, status: 'passed', milliseconds: performance.now() - started });
      console.log(`✓ ${name} (${(performance.now() - started).toFixed(0)} ms)`);
    } catch (error) {
      results.push({ name, status: 'failed', error: String(error?.stack ?? error) });
      console.log(
        `✗ ${name}\n    ${String(error?.stack ?? error)
          .split('\n')
          .slice(0, 6)
          .join('\n    ')}`,
      );
    }
  }
  if (!node.skip) {
    for (const hook of node.afterAll) {
      try {
        await hook();
      } catch (error) {
        results.push({
          name: `${here.join(' > ')} (afterAll)`,
          status: 'failed',
          error: String(error?.stack ?? error),
        });
      }
    }
  }
}

let started = false;
process.on('beforeExit', async () => {
  if (started) return;
  started = true;
  await run(root, []);
  const failed = results.filter((result) => result.status === 'failed').length;
  const passed = results.filter((result) => result.status === 'passed').length;
  console.log(`${passed} passed, ${failed} failed, ${results.length - passed - failed} skipped`);
  if (process.env.GPU_TEST_JSON)
    writeFileSync(process.env.GPU_TEST_JSON, `${JSON.stringify(results, null, 2)}\n`);
  if (failed > 0) process.exitCode = 1;
});
