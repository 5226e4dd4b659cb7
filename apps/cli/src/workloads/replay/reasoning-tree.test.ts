import { InvalidArgumentError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { LLAMA3_8B } from '../builtin.js';
import { parseWorkload } from '../parse-workload.js';
import { summarizeWorkload } from '../workload-summary.js';
import { datasetAvailable, datasetDirectory, loadReasoningTree } from './deft-dataset.js';
import {
  liveNodeCount,
  parseReasoningTree,
  reasoningTreeAtStep,
  replayReasoningTree,
  widestStep,
} from './reasoning-tree.js';

// A prompt of 5 tokens (steps -4 .. 0); node 1 decodes steps 1..3 and branches into 3 and 4 (steps 4..);
// node 2 decodes steps 1..2 and is dropped (no children); node 4 is dropped after step 5.
const record = {
  prompt: 'p',
  incompleted: false,
  data: {
    0: { id: 0, value: 5, start: -4, end: 0, children: [1, 2] },
    1: { id: 1, value: 3, start: 1, end: 3, children: [3, 4] },
    2: { id: 2, value: 2, start: 1, end: 2, children: [] },
    3: { id: 3, value: 4, start: 4, end: 7, children: [] },
    4: { id: 4, value: 2, start: 4, end: 5, children: [] },
  },
};

describe('reasoning-tree replay', () => {
  const tree = parseReasoningTree(record);

  it('renumbers nodes in depth-first pre-order, parents first', () => {
    expect(tree.nodes.map((node) => node.recordId)).toEqual([0, 1, 3, 4, 2]);
    expect(tree.nodes.map((node) => node.parent)).toEqual([-1, 0, 1, 1, 0]);
    expect(tree.lastStep).toBe(7);
  });

  it('counts live nodes and finds the widest step', () => {
    expect(liveNodeCount(tree, 1)).toBe(2);
    expect(liveNodeCount(tree, 3)).toBe(1);
    expect(liveNodeCount(tree, 4)).toBe(2);
    expect(widestStep(tree)).toBe(1);
  });

  it('gives the tree and queries of a step', () => {
    const first = reasoningTreeAtStep(tree, 1, LLAMA3_8B, 't')!;
    expect(first.name).toBe('t:1');
    expect(first.nodes).toEqual([
      { parent: -1, tokens: 5 },
      { parent: 0, tokens: 1 },
      { parent: 0, tokens: 1 },
    ]);
    expect(first.queries).toEqual([
      [1, 0],
      [2, 0],
    ]);
    // Step 3: node 2 finished without children and was pruned; node 1 holds 3 tokens.
    const third = reasoningTreeAtStep(tree, 3, LLAMA3_8B, 't')!;
    expect(third.nodes).toEqual([
      { parent: -1, tokens: 5 },
      { parent: 0, tokens: 3 },
    ]);
    expect(third.queries).toEqual([[1, 2]]);
    // Step 5: node 1 is finished but kept (its children are live).
    const fifth = reasoningTreeAtStep(tree, 5, LLAMA3_8B, 't')!;
    expect(fifth.nodes).toEqual([
      { parent: -1, tokens: 5 },
      { parent: 0, tokens: 3 },
      { parent: 1, tokens: 2 },
      { parent: 1, tokens: 2 },
    ]);
    expect(fifth.queries).toEqual([
      [2, 1],
      [3, 1],
    ]);
    expect(reasoningTreeAtStep(tree, 8, LLAMA3_8B, 't')).toBeUndefined();
  });

  it('replays every step as a valid workload', () => {
    const steps = [...replayReasoningTree(tree, LLAMA3_8B, 't')];
    expect(steps.map((entry) => entry.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const { workload } of steps)
      expect(parseWorkload(JSON.parse(JSON.stringify(workload)))).toEqual(workload);
    expect(steps.map(({ workload }) => workload.queries!.length)).toEqual([2, 2, 1, 2, 2, 1, 1]);
  });

  it('rejects malformed records naming the field', () => {
    const bad = (data: unknown) => () => parseReasoningTree({ data });
    expect(bad({ 1: record.data[1] })).toThrow(/data\.0/);
    expect(bad({ ...record.data, 1: { ...record.data[1], value: 2.5 } })).toThrow(
      /data\.1\.value must be an integer/,
    );
    expect(bad({ ...record.data, 2: { ...record.data[2], children: [1] } })).toThrow(InvalidArgumentError);
    expect(bad({ ...record.data, 2: { ...record.data[2], children: [9] } })).toThrow(
      /data\.9 is listed as a child/,
    );
  });
});

describe.skipIf(!datasetAvailable())('reasoning trees of the DeFT dataset', () => {
  it('replays tree 0 of docmerge: nodes, widest step, growth', () => {
    const tree = loadReasoningTree('docmerge', 0)!;
    expect(tree.nodes).toHaveLength(31);
    const widest = widestStep(tree);
    expect(liveNodeCount(tree, widest)).toBe(16);
    const workload = reasoningTreeAtStep(tree, widest, LLAMA3_8B, 'tot:docmerge:0')!;
    expect(workload.queries).toHaveLength(16);
    expect(workload.nodes[0]).toEqual({ parent: -1, tokens: 1073 });
    // Every step is a well-formed workload and the prompt is shared by every query.
    let steps = 0;
    for (const entry of replayReasoningTree(tree, LLAMA3_8B, 'tot:docmerge:0')) {
      steps++;
      if (entry.step % 97 !== 0) continue;
      const summary = summarizeWorkload(parseWorkload(JSON.parse(JSON.stringify(entry.workload))));
      expect(summary.pathTokens).toBeGreaterThanOrEqual(summary.queries * 1073);
    }
    expect(steps).toBe(tree.lastStep);
  });
});

if (!datasetAvailable())
  console.warn(`skipping dataset replay tests: no DeFT dataset at ${datasetDirectory()}`);
