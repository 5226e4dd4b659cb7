import { describe, expect, it } from 'vitest';
import { LLAMA3_8B } from '../builtin.js';
import { parseWorkload } from '../parse-workload.js';
import { summarizeWorkload } from '../workload-summary.js';
import { datasetAvailable, datasetDirectory, loadSpeculativeRecord } from './deft-dataset.js';
import {
  CHARACTERS_PER_TOKEN,
  parseSpeculativeRecord,
  replaySpeculativeRun,
  speculativeStep,
} from './speculative-record.js';

const record = {
  Tree_ID: 1,
  Tree_Structure: [[0], [0, 0], [1], [0, 1], [0, 0, 0]],
  Token_Tree_size: 6,
  Records: [{ prompt: 'x'.repeat(40), Accept_length: [2, 3, 1] }],
};

describe('speculative-record replay', () => {
  const parsed = parseSpeculativeRecord(record);

  it('turns choice paths into parents', () => {
    expect(parsed.candidateParents).toEqual([-1, -1, 0, 0, 2]);
    expect(parsed.tokenTreeSize).toBe(6);
    expect(parsed.runs[0]!.promptTokens).toBe(40 / CHARACTERS_PER_TOKEN);
  });

  it('builds the prefix + token tree of a step, every token a query', () => {
    const workload = speculativeStep(parsed, 0, 2, LLAMA3_8B, 'sd');
    expect(workload.name).toBe('sd:0:2');
    expect(workload.nodes).toEqual([
      { parent: -1, tokens: 10 + 2 + 3 },
      { parent: 0, tokens: 1 },
      { parent: 1, tokens: 1 },
      { parent: 1, tokens: 1 },
      { parent: 2, tokens: 1 },
      { parent: 2, tokens: 1 },
      { parent: 4, tokens: 1 },
    ]);
    expect(workload.queries).toHaveLength(6);
    expect(parseWorkload(JSON.parse(JSON.stringify(workload)))).toEqual(workload);
    // Each candidate sees the prefix and its ancestors in the token tree, itself included.
    expect(summarizeWorkload(workload).pathTokens).toBe(6 * 15 + (1 + 2 + 2 + 3 + 3 + 4));
  });

  it('replays every verification step', () => {
    const prefixes = [...replaySpeculativeRun(parsed, 0, LLAMA3_8B, 'sd')].map(
      ({ workload }) => workload.nodes[0]!.tokens,
    );
    expect(prefixes).toEqual([10, 12, 15]);
  });

  it('rejects malformed records and out-of-range steps', () => {
    expect(() => parseSpeculativeRecord({ ...record, Tree_Structure: [[0, 1]] })).toThrow(
      /Tree_Structure\[0\] has no parent/,
    );
    expect(() =>
      parseSpeculativeRecord({ ...record, Records: [{ prompt: 'a', Accept_length: [1.5] }] }),
    ).toThrow(/Records\[0\]\.Accept_length/);
    expect(() => speculativeStep(parsed, 0, 3, LLAMA3_8B, 'sd')).toThrow(
      /step must be a verification step 0 \.\. 2/,
    );
    expect(() => speculativeStep(parsed, 1, 0, LLAMA3_8B, 'sd')).toThrow(/record must be a run index/);
  });
});

describe.skipIf(!datasetAvailable())('speculative records of the DeFT dataset', () => {
  it.each([32, 64, 128, 256])('APPS_tree_size%i has a token tree of that size', (size) => {
    const parsed = loadSpeculativeRecord(size);
    expect(parsed.tokenTreeSize).toBe(size);
    const workload = speculativeStep(parsed, 0, 0, LLAMA3_8B, `sd:apps${size}`);
    expect(workload.queries).toHaveLength(size);
    expect(summarizeWorkload(workload).depth).toBeGreaterThanOrEqual(3);
  });
});

if (!datasetAvailable())
  console.warn(`skipping dataset replay tests: no DeFT dataset at ${datasetDirectory()}`);
