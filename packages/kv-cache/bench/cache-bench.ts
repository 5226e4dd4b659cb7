/**
 * Tree KV cache bookkeeping: a beam-style tree of 1024 leaves over a 4000-token prompt, decoding steps of one
 * token per leaf with view() rebuilt every step. Run: `pnpm tsx --conditions=source packages/kv-cache/bench/cache-bench.ts`.
 */
import { performance } from 'node:perf_hooks';
import { TokenTree } from '@deft/tree';
import { PagePool, TreeKVCache } from '../src/index.js';

const LEAVES = 1024;
const STEPS = 256;
const pool = new PagePool({ numPages: 64 * 1024, pageSize: 16 });
const tree = TokenTree.create(new Int32Array(4000).fill(1));
const cache = new TreeKVCache({ pool });
cache.attach(tree);
const leaves = tree.fork(tree.root, LEAVES);
const start = performance.now();
let viewMs = 0;
for (let step = 0; step < STEPS; step++) {
  for (const leaf of leaves) tree.append(leaf, step);
  const before = performance.now();
  cache.view();
  viewMs += performance.now() - before;
}
const totalMs = performance.now() - start;
const appendNs = ((totalMs - viewMs) * 1e6) / (LEAVES * STEPS);
const report = {
  leaves: LEAVES,
  steps: STEPS,
  tokens: tree.totalTokens,
  usedPages: pool.usedCount,
  appendNsPerToken: appendNs,
  viewMsPerStep: viewMs / STEPS,
};
console.log(
  `${LEAVES} leaves x ${STEPS} steps: tree.append + cache ${appendNs.toFixed(0)} ns/token, view() ${report.viewMsPerStep.toFixed(3)} ms/step, ${report.usedPages} pages`,
);
console.log(JSON.stringify(report));
