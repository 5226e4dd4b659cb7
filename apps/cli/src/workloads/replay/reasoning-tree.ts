import { InvalidArgumentError } from '@deft/core';
import { describeValue } from '@deft/core/validate';
import type { Workload, WorkloadNode, WorkloadShape } from '../workload.js';

/** One node of a recorded reasoning tree, renumbered in depth-first pre-order (the root is node 0). */
export interface ReasoningTreeNode {
  /** Index of the parent node (`-1` for the root); always smaller than the node's own index. */
  readonly parent: number;
  /** Tokens the node holds once finished (the root: the prompt). */
  readonly tokens: number;
  /** Decoding step of the node's first token (the root's is `<= 0`). */
  readonly start: number;
  /** Decoding step of the node's last token (`start + tokens - 1`). */
  readonly end: number;
  /** Indices of the children, in recorded order. */
  readonly children: readonly number[];
  /** The node's id in the record. */
  readonly recordId: number;
}

/**
 * A Tree-of-Thoughts search as recorded in the DeFT dataset (`*ToT.json`): which node generated its
 * tokens at which decoding step. Replaying it gives the tree and the queries of every step.
 */
export interface ReasoningTree {
  /** Nodes in depth-first pre-order. */
  readonly nodes: readonly ReasoningTreeNode[];
  /** The last decoding step at which any node is live. */
  readonly lastStep: number;
}

/**
 * Reads one tree of a `*ToT.json` file: `{ prompt, incompleted, data: { id: { id, value, start, end, children } } }`.
 *
 * @throws {InvalidArgumentError} naming the field when the record is malformed (missing nodes, a cycle,
 *   a node reachable twice, non-integer sizes).
 * @example
 * ```ts
 * const tree = parseReasoningTree(JSON.parse(readFileSync('docmergeToT.json', 'utf8'))[0]);
 * ```
 */
export function parseReasoningTree(record: unknown): ReasoningTree {
  if (!isRecord(record) || !isRecord(record.data)) {
    throw invalid('data', 'a reasoning-tree record must be an object with a "data" map of nodes', record);
  }
  const data = record.data;
  const byId = new Map<number, { value: number; start: number; end: number; children: number[] }>();
  for (const [key, entry] of Object.entries(data)) {
    const field = `data.${key}`;
    if (!isRecord(entry)) throw invalid(field, 'must be a node object', entry);
    const id = integer(entry.id, `${field}.id`);
    const value = integer(entry.value, `${field}.value`);
    if (value < 1) throw invalid(`${field}.value`, 'must be >= 1 token', entry.value);
    const start = integer(entry.start, `${field}.start`);
    const end = integer(entry.end, `${field}.end`);
    if (!Array.isArray(entry.children))
      throw invalid(`${field}.children`, 'must be an array of node ids', entry.children);
    const children = entry.children.map((child: unknown, index: number) =>
      integer(child, `${field}.children[${index}]`),
    );
    byId.set(id, { value, start, end, children });
  }
  const root = byId.get(0);
  if (root === undefined) throw invalid('data.0', 'the root node (id 0) is missing', undefined);
  const nodes: ReasoningTreeNode[] = [];
  const childLists: number[][] = [];
  // Iterative depth-first pre-order walk that refuses a node reached twice (a cycle or a shared child).
  const seen = new Set<number>();
  const stack: { id: number; parent: number }[] = [{ id: 0, parent: -1 }];
  while (stack.length > 0) {
    const { id, parent } = stack.pop()!;
    if (seen.has(id))
      throw invalid(`data.${id}`, 'is reached twice (a cycle or a node with two parents)', id);
    seen.add(id);
    const entry = byId.get(id);
    if (entry === undefined) throw invalid(`data.${id}`, 'is listed as a child but not defined', id);
    const index = nodes.length;
    nodes.push({
      parent,
      tokens: entry.value,
      start: entry.start,
      end: entry.end,
      children: [],
      recordId: id,
    });
    childLists.push([]);
    if (parent >= 0) childLists[parent]!.push(index);
    for (let child = entry.children.length - 1; child >= 0; child--)
      stack.push({ id: entry.children[child]!, parent: index });
  }
  let lastStep = 0;
  const finished = nodes.map((node, index) => {
    lastStep = Math.max(lastStep, node.end);
    return { ...node, children: childLists[index]! };
  });
  return { nodes: finished, lastStep };
}

/** Number of nodes live at `step` (generating a token: `start <= step <= end`). */
export function liveNodeCount(tree: ReasoningTree, step: number): number {
  let count = 0;
  for (const node of tree.nodes) if (node.start <= step && step <= node.end) count++;
  return count;
}

/** The first step with the most live nodes: the widest point of the search. */
export function widestStep(tree: ReasoningTree): number {
  let best = 1;
  let bestCount = -1;
  for (let step = 1; step <= tree.lastStep; step++) {
    const count = liveNodeCount(tree, step);
    if (count > bestCount) {
      best = step;
      bestCount = count;
    }
  }
  return best;
}

/**
 * The decoding tree at one step of the replay: every node that has started and still has a live node
 * in its subtree (finished branches with no live descendant have been pruned), each holding the tokens
 * generated so far, with one query per live node at its newest token. `undefined` when no node is live.
 *
 * @throws {InvalidArgumentError} when `step` is not an integer.
 * @example
 * ```ts
 * const workload = reasoningTreeAtStep(tree, widestStep(tree), LLAMA3_8B, 'tot:docmerge:0');
 * ```
 */
export function reasoningTreeAtStep(
  tree: ReasoningTree,
  step: number,
  shape: WorkloadShape,
  name: string,
): Workload | undefined {
  if (!Number.isInteger(step)) throw invalid('step', 'must be an integer', step);
  const count = tree.nodes.length;
  const live = new Uint8Array(count);
  const present = new Uint8Array(count);
  for (let index = count - 1; index >= 0; index--) {
    const node = tree.nodes[index]!;
    if (node.start > step) continue;
    if (step <= node.end) live[index] = 1;
    // Children come after their parent in pre-order, so they are already decided.
    if (live[index] === 1 || node.children.some((child) => present[child] === 1)) present[index] = 1;
  }
  if (present[0] !== 1) return undefined;
  const newIndex = new Int32Array(count).fill(-1);
  const nodes: WorkloadNode[] = [];
  const queries: [number, number][] = [];
  for (let index = 0; index < count; index++) {
    if (present[index] !== 1) continue;
    const node = tree.nodes[index]!;
    const tokens = Math.min(node.tokens, step - node.start + 1);
    newIndex[index] = nodes.length;
    nodes.push({ parent: node.parent < 0 ? -1 : newIndex[node.parent]!, tokens });
    if (live[index] === 1) queries.push([nodes.length - 1, tokens - 1]);
  }
  return { name: `${name}:${step}`, ...shape, nodes, queries };
}

/**
 * Replays a reasoning tree step by step (steps `1 ..= lastStep`), yielding the workload of every step
 * at which some node is live.
 *
 * @example
 * ```ts
 * for (const { step, workload } of replayReasoningTree(tree, LLAMA3_8B, 'tot:docmerge:0')) plan(workload);
 * ```
 */
export function* replayReasoningTree(
  tree: ReasoningTree,
  shape: WorkloadShape,
  name: string,
): Generator<{ step: number; workload: Workload }> {
  for (let step = 1; step <= tree.lastStep; step++) {
    const workload = reasoningTreeAtStep(tree, step, shape, name);
    if (workload !== undefined) yield { step, workload };
  }
}

function integer(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw invalid(field, 'must be an integer', value);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(field: string, problem: string, actual: unknown): InvalidArgumentError {
  return new InvalidArgumentError(`${field} ${problem}, got ${describeValue(actual)}`, {
    argument: field,
    actual,
  });
}
