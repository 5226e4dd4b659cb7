/**
 * Token-tree bookkeeping at scale: 100k nodes and 10M tokens.
 * Run from the repository root: `pnpm tsx packages/tree/bench/tree-bench.ts` (add `--json` for JSON only).
 */
import { performance } from 'node:perf_hooks';
import { TokenTree } from '../src/index.js';

const NODE_TARGET = 100_000;
const TOKEN_TARGET = 10_000_000;
const jsonOnly = process.argv.includes('--json');

function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function time<T>(run: () => T): { result: T; ms: number } {
  const start = performance.now();
  const result = run();
  return { result, ms: performance.now() - start };
}

const random = lcg(42);
const prompt = new Int32Array(1000).map((_, index) => index % 32000);
const tree = TokenTree.create(prompt);

// fork: grow to 100k nodes by forking random leaves into 2 children
const forkRun = time(() => {
  const leaves: number[] = [tree.root];
  let forks = 0;
  while (tree.nodeCount < NODE_TARGET) {
    const index = Math.floor(random() * leaves.length);
    const leaf = leaves[index]!;
    const children = tree.fork(leaf, 2);
    leaves[index] = children[0]!;
    leaves.push(children[1]!);
    forks++;
  }
  return { forks, leaves };
});
const leaves = forkRun.result.leaves;

// append: 10M tokens one at a time, round robin over the leaves (the decoding-step pattern)
const appendRun = time(() => {
  let appended = 0;
  let token = 0;
  while (appended < TOKEN_TARGET - prompt.length) {
    for (let index = 0; index < leaves.length && appended < TOKEN_TARGET - prompt.length; index++) {
      tree.append(leaves[index]!, token);
      token = (token + 1) % 32000;
      appended++;
    }
  }
  return appended;
});

// bulk append: 64 tokens at a time to 1000 leaves
const bulk = new Int32Array(64).fill(7);
const bulkRun = time(() => {
  for (let index = 0; index < 1000; index++) tree.append(leaves[index]!, bulk);
  return 1000 * bulk.length;
});

// dfs: recompute after a change each time
const dfsRuns = 20;
const dfsRun = time(() => {
  let total = 0;
  for (let run = 0; run < dfsRuns; run++) {
    tree.append(leaves[run]!, 1);
    total += tree.dfsOrder().length;
  }
  return total;
});

const queriesRun = time(() => tree.queries('leaves').nodes.length);
const totalTokens = tree.totalTokens;
const pathRun = time(() => {
  let total = 0;
  for (let index = 0; index < 1000; index++) total += tree.pathTokenCount(leaves[index]!);
  return total;
});

// prune: half of the leaves one by one, then the two subtrees below the root
const pruneLeavesRun = time(() => {
  let removed = 0;
  for (let index = 0; index < leaves.length; index += 2) removed += tree.prune(leaves[index]!).length;
  return removed;
});
const pruneSubtreesRun = time(() => {
  let removed = 0;
  for (const child of tree.children(tree.root)) removed += tree.prune(child).length;
  return removed;
});

const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;
const arrayBuffersMiB = process.memoryUsage().arrayBuffers / 2 ** 20;
const report = {
  nodes: NODE_TARGET,
  tokens: totalTokens,
  fork: { calls: forkRun.result.forks, ms: forkRun.ms, nsPerCall: (forkRun.ms * 1e6) / forkRun.result.forks },
  appendOneToken: {
    calls: appendRun.result,
    ms: appendRun.ms,
    nsPerToken: (appendRun.ms * 1e6) / appendRun.result,
  },
  appendBulk64: { tokens: bulkRun.result, ms: bulkRun.ms, nsPerToken: (bulkRun.ms * 1e6) / bulkRun.result },
  dfsOrder: { nodes: NODE_TARGET, msPerCall: dfsRun.ms / dfsRuns },
  queriesLeaves: { queries: queriesRun.result, ms: queriesRun.ms },
  pathTokenCount: { calls: 1000, msTotal: pathRun.ms },
  pruneLeaves: {
    calls: Math.ceil(leaves.length / 2),
    ms: pruneLeavesRun.ms,
    nsPerCall: (pruneLeavesRun.ms * 1e6) / Math.ceil(leaves.length / 2),
  },
  pruneSubtrees: { removed: pruneSubtreesRun.result, ms: pruneSubtreesRun.ms },
  memory: { heapMiB, arrayBuffersMiB },
  node: process.version,
};

if (jsonOnly) console.log(JSON.stringify(report));
else {
  console.log(`@deft/tree bookkeeping: ${report.nodes} nodes, ${report.tokens} tokens (${report.node})`);
  console.log(
    `fork(leaf, 2)          ${report.fork.calls} calls  ${report.fork.ms.toFixed(1)} ms  ${report.fork.nsPerCall.toFixed(0)} ns/call`,
  );
  console.log(
    `append(leaf, token)    ${report.appendOneToken.calls} calls  ${report.appendOneToken.ms.toFixed(1)} ms  ${report.appendOneToken.nsPerToken.toFixed(0)} ns/token`,
  );
  console.log(
    `append(leaf, 64 tok)   ${report.appendBulk64.tokens} tokens  ${report.appendBulk64.ms.toFixed(2)} ms  ${report.appendBulk64.nsPerToken.toFixed(1)} ns/token`,
  );
  console.log(`dfsOrder() after edit  ${report.dfsOrder.msPerCall.toFixed(2)} ms/call`);
  console.log(
    `queries('leaves')      ${report.queriesLeaves.queries} queries  ${report.queriesLeaves.ms.toFixed(2)} ms`,
  );
  console.log(`pathTokenCount x1000   ${report.pathTokenCount.msTotal.toFixed(2)} ms`);
  console.log(
    `prune(leaf)            ${report.pruneLeaves.calls} calls  ${report.pruneLeaves.ms.toFixed(1)} ms  ${report.pruneLeaves.nsPerCall.toFixed(0)} ns/call`,
  );
  console.log(
    `prune(subtree)         ${report.pruneSubtrees.removed} nodes  ${report.pruneSubtrees.ms.toFixed(2)} ms`,
  );
  console.log(
    `memory                 heap ${heapMiB.toFixed(0)} MiB, array buffers ${arrayBuffersMiB.toFixed(0)} MiB`,
  );
  console.log(JSON.stringify(report));
}
