/**
 * Planner benchmark: time of `planTreeAttention` on the paper's tree shapes, with the IO model.
 *
 *   pnpm tsx packages/kv-cache/bench/plan-bench.ts [--json FILE] [--iterations N]
 *
 * Reasoning trees are replayed from `../shared/workloads/deft-dataset` (relative to the repository
 * root) when present; a synthetic 3-level tree of about 10k tokens is always measured.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AttentionShape, PagedTreeView, PlanStrategy, TreeQueries } from '@deft/core';
import { buildPagedTree, defaultQueries, type TreeNodeSpec } from '@deft/testing';
import { planTreeAttention } from '../src/plan-tree-attention.js';

const shape: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };
const pageSize = 16;
const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const sharedWorkloads = path.resolve(repositoryRoot, '../shared/workloads/deft-dataset');

interface Workload {
  readonly name: string;
  readonly view: PagedTreeView;
  readonly queries: TreeQueries;
}

function workload(
  name: string,
  nodes: TreeNodeSpec[],
  queries?: (view: PagedTreeView, ids: Int32Array) => TreeQueries,
): Workload {
  const { view, nodeIds } = buildPagedTree(nodes, pageSize, { seed: 1 });
  return { name, view, queries: queries === undefined ? defaultQueries(view) : queries(view, nodeIds) };
}

function speculativeTree(prefix: number, size: number, seed: number): TreeNodeSpec[] {
  // A Medusa-like token tree: each candidate hangs below one of the last few candidates or the prefix.
  let state = seed;
  const nodes: TreeNodeSpec[] = [{ parent: -1, tokens: prefix }];
  for (let index = 0; index < size; index++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const parent = index < 4 ? 0 : 1 + Math.floor((state / 2 ** 32) * index);
    nodes.push({ parent, tokens: 1 });
  }
  return nodes;
}

function everyNode(_view: PagedTreeView, ids: Int32Array): TreeQueries {
  const nodes = Int32Array.from(ids.subarray(1));
  return { nodes, positions: new Int32Array(nodes.length) };
}

interface ReasoningNode {
  readonly id: number;
  readonly value: number;
  readonly start: number;
  readonly end: number;
  readonly children: number[];
}

/** The tree of a Tree-of-Thoughts record at decoding step `step`: live nodes queried at their last token. */
function replayStep(
  data: Record<string, ReasoningNode>,
  step: number,
): { nodes: TreeNodeSpec[]; live: number[] } {
  const nodes: TreeNodeSpec[] = [];
  const live: number[] = [];
  const visit = (node: ReasoningNode, parent: number): boolean => {
    if (node.start > step) return false;
    const tokens = node.start <= 0 ? node.value : Math.min(node.value, step - node.start + 1);
    const index = nodes.length;
    nodes.push({ parent, tokens });
    let kept = false;
    for (const child of node.children) kept = visit(data[String(child)]!, index) || kept;
    const isLive = node.start <= step && step <= node.end && node.start > 0;
    if (isLive) live.push(index);
    if (!kept && !isLive && node.children.length === 0 && node.end < step && node.start > 0) {
      nodes.pop(); // a finished leaf was pruned: its KV is freed
      return false;
    }
    return true;
  };
  visit(data['0']!, -1);
  return { nodes, live };
}

function reasoningWorkloads(): Workload[] {
  const result: Workload[] = [];
  for (const task of ['docmergeToT', 'keywordToT', 'set128ToT', 'sorting128ToT']) {
    let trees: Array<{ data: Record<string, ReasoningNode> }>;
    try {
      trees = JSON.parse(readFileSync(path.join(sharedWorkloads, `${task}.json`), 'utf8'));
    } catch {
      continue;
    }
    const data = trees[0]!.data;
    const lastStep = Math.max(...Object.values(data).map((node) => node.end));
    // The step with the most tokens in the tree (the heaviest plan of the replay).
    let best: { nodes: TreeNodeSpec[]; live: number[]; tokens: number } | undefined;
    for (let step = 1; step <= lastStep; step += Math.max(1, Math.floor(lastStep / 64))) {
      const { nodes, live } = replayStep(data, step);
      if (live.length === 0) continue;
      const tokens = nodes.reduce((sum, node) => sum + node.tokens, 0);
      if (best === undefined || tokens > best.tokens) best = { nodes, live, tokens };
    }
    if (best === undefined) continue;
    const { nodes, live } = best;
    result.push(
      workload(`reasoning-${task} (${best.tokens} tokens, ${live.length} queries)`, nodes, (_view, ids) => ({
        nodes: Int32Array.from(live, (index) => ids[index]!),
        positions: Int32Array.from(live, (index) => nodes[index]!.tokens - 1),
      })),
    );
  }
  return result;
}

function syntheticReasoning(): TreeNodeSpec[] {
  const nodes: TreeNodeSpec[] = [{ parent: -1, tokens: 2000 }];
  for (let thought = 0; thought < 10; thought++) {
    const parent = nodes.push({ parent: 0, tokens: 400 }) - 1;
    for (let step = 0; step < 5; step++) nodes.push({ parent, tokens: 80 + step * 3 });
  }
  return nodes;
}

function main(): void {
  const argumentsList = process.argv.slice(2);
  const jsonIndex = argumentsList.indexOf('--json');
  const iterationsIndex = argumentsList.indexOf('--iterations');
  const iterations = iterationsIndex === -1 ? 500 : Number(argumentsList[iterationsIndex + 1]);
  const workloads: Workload[] = [
    workload('sd-1000+256 leaves', [
      { parent: -1, tokens: 1000 },
      ...Array.from({ length: 256 }, () => ({ parent: 0, tokens: 1 })),
    ]),
    workload('sd-1000+64 leaves', [
      { parent: -1, tokens: 1000 },
      ...Array.from({ length: 64 }, () => ({ parent: 0, tokens: 1 })),
    ]),
    workload('sd-1000+256-node token tree (every node a query)', speculativeTree(1000, 256, 7), everyNode),
    workload('few-shot-4000+20x400', [
      { parent: -1, tokens: 4000 },
      ...Array.from({ length: 20 }, () => ({ parent: 0, tokens: 400 })),
    ]),
    workload('few-shot-4000+50x400', [
      { parent: -1, tokens: 4000 },
      ...Array.from({ length: 50 }, () => ({ parent: 0, tokens: 400 })),
    ]),
    workload('reasoning-synthetic-3-level (10k tokens)', syntheticReasoning()),
    ...reasoningWorkloads(),
  ];
  const strategies: PlanStrategy[] = ['deft-flatten', 'deft-node', 'deft-node-chunk', 'sequence'];
  const rows: Array<Record<string, number | string>> = [];
  for (const { name, view, queries } of workloads) {
    for (const strategy of strategies) {
      const plan = () => planTreeAttention(view, queries, { strategy, shape });
      for (let warm = 0; warm < 50; warm++) plan();
      const times: number[] = [];
      let result = plan();
      for (let run = 0; run < iterations; run++) {
        const start = performance.now();
        result = plan();
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      const { io } = result;
      rows.push({
        workload: name,
        strategy,
        minMicroseconds: Math.round(times[0]! * 1000),
        medianMicroseconds: Math.round(times[Math.floor(times.length / 2)]! * 1000),
        chunks: result.numChunks,
        partials: result.numPartials,
        queries: result.numQueries,
        uniqueTokens: io.uniqueTokens,
        kvReadOverUnique: Number((io.kvBytesRead / io.uniqueKvBytes).toFixed(3)),
        uniqueKvMiB: Number((io.uniqueKvBytes / 2 ** 20).toFixed(2)),
        partialMiB: Number((io.partialBytes / 2 ** 20).toFixed(2)),
      });
    }
  }
  console.table(rows);
  if (jsonIndex !== -1) {
    writeFileSync(
      argumentsList[jsonIndex + 1]!,
      `${JSON.stringify({ shape, pageSize, node: process.version, rows }, null, 2)}\n`,
    );
  }
}

main();
