import { InvalidArgumentError } from '@deft/core';
import { describeValue } from '@deft/core/validate';
import type { Workload, WorkloadNode, WorkloadShape } from '../workload.js';

/** Characters per token used to estimate a prompt's length: the records hold the prompt text only. */
export const CHARACTERS_PER_TOKEN = 4;

/** One decoding run of a speculative-decoding record. */
export interface SpeculativeRun {
  /** Prompt length in tokens, estimated from its text ({@link CHARACTERS_PER_TOKEN}). */
  readonly promptTokens: number;
  /** `[steps]` tokens accepted at each verification step. */
  readonly acceptLengths: readonly number[];
}

/**
 * A speculative-decoding record of the DeFT dataset (`APPS_tree_size*.json`): a Medusa-style candidate
 * token tree and, per run, how many tokens each verification step accepted.
 */
export interface SpeculativeRecord {
  /**
   * Parent of each candidate token inside the token tree, `-1` for a child of the root token;
   * `[candidates]`, parents before children. The token tree holds the root token plus these candidates.
   */
  readonly candidateParents: readonly number[];
  /** Tokens of the token tree (root token included): the queries of every verification step. */
  readonly tokenTreeSize: number;
  readonly runs: readonly SpeculativeRun[];
}

/**
 * Reads an `APPS_tree_size*.json` record: `{ Tree_ID, Tree_Structure: [[choice, …], …], Token_Tree_size,
 * Records: [{ prompt, Accept_length: [...] }] }`. Each `Tree_Structure` entry is the path of choice
 * indices of one candidate below the root token (`[0, 1]`: the second candidate under the first).
 *
 * @throws {InvalidArgumentError} naming the field when the record is malformed.
 * @example
 * ```ts
 * const record = parseSpeculativeRecord(JSON.parse(readFileSync('APPS_tree_size64.json', 'utf8')));
 * ```
 */
export function parseSpeculativeRecord(value: unknown): SpeculativeRecord {
  if (!isRecord(value)) throw invalid('record', 'must be an object', value);
  const structure = value.Tree_Structure;
  if (!Array.isArray(structure) || structure.length === 0) {
    throw invalid('Tree_Structure', 'must be a non-empty array of choice paths', structure);
  }
  const paths = structure.map((path: unknown, index: number) => {
    if (
      !Array.isArray(path) ||
      path.length === 0 ||
      !path.every((choice) => Number.isInteger(choice) && choice >= 0)
    ) {
      throw invalid(`Tree_Structure[${index}]`, 'must be a non-empty array of choice indices', path);
    }
    return path as number[];
  });
  // Parents have shorter paths: a stable sort by length lists every parent before its children.
  const order = paths.map((_, index) => index).sort((a, b) => paths[a]!.length - paths[b]!.length || a - b);
  const indexOfPath = new Map<string, number>();
  const candidateParents: number[] = [];
  for (const original of order) {
    const path = paths[original]!;
    const key = path.join(',');
    if (indexOfPath.has(key)) throw invalid(`Tree_Structure[${original}]`, 'repeats an earlier path', path);
    let parent = -1;
    if (path.length > 1) {
      const found = indexOfPath.get(path.slice(0, -1).join(','));
      if (found === undefined)
        throw invalid(`Tree_Structure[${original}]`, 'has no parent path in the tree', path);
      parent = found;
    }
    indexOfPath.set(key, candidateParents.length);
    candidateParents.push(parent);
  }
  const records = value.Records;
  if (!Array.isArray(records) || records.length === 0)
    throw invalid('Records', 'must be a non-empty array', records);
  const runs = records.map((run: unknown, index: number) => {
    const field = `Records[${index}]`;
    if (!isRecord(run)) throw invalid(field, 'must be an object', run);
    if (typeof run.prompt !== 'string') throw invalid(`${field}.prompt`, 'must be a string', run.prompt);
    const lengths = run.Accept_length;
    if (
      !Array.isArray(lengths) ||
      lengths.length === 0 ||
      !lengths.every((length) => Number.isInteger(length) && length >= 0)
    ) {
      throw invalid(`${field}.Accept_length`, 'must be a non-empty array of integers >= 0', lengths);
    }
    return {
      promptTokens: Math.max(1, Math.ceil(run.prompt.length / CHARACTERS_PER_TOKEN)),
      acceptLengths: lengths as number[],
    };
  });
  return { candidateParents, tokenTreeSize: candidateParents.length + 1, runs };
}

/**
 * The attention workload of one verification step of a run: a shared prefix (the prompt plus every
 * token accepted before the step) and the token tree, one token per node; every token-tree token is a
 * query. Node 0 is the prefix, node 1 the root token, nodes 2.. the candidates.
 *
 * @throws {InvalidArgumentError} when `run` or `step` is out of range.
 * @example
 * ```ts
 * const workload = speculativeStep(record, 0, 10, LLAMA3_8B, 'sd:apps64');
 * ```
 */
export function speculativeStep(
  record: SpeculativeRecord,
  run: number,
  step: number,
  shape: WorkloadShape,
  name: string,
): Workload {
  const runRecord = record.runs[run];
  if (!Number.isInteger(run) || runRecord === undefined) {
    throw invalid('record', `must be a run index 0 .. ${record.runs.length - 1}`, run);
  }
  if (!Number.isInteger(step) || step < 0 || step >= runRecord.acceptLengths.length) {
    throw invalid('step', `must be a verification step 0 .. ${runRecord.acceptLengths.length - 1}`, step);
  }
  let prefix = runRecord.promptTokens;
  for (let index = 0; index < step; index++) prefix += runRecord.acceptLengths[index]!;
  const nodes: WorkloadNode[] = [
    { parent: -1, tokens: prefix },
    { parent: 0, tokens: 1 },
  ];
  for (const parent of record.candidateParents)
    nodes.push({ parent: parent < 0 ? 1 : parent + 2, tokens: 1 });
  const queries = nodes.slice(1).map((_, index) => [index + 1, 0] as const);
  return { name: `${name}:${run}:${step}`, ...shape, nodes, queries };
}

/**
 * Replays one run of a record: the workload of every verification step in order.
 *
 * @example
 * ```ts
 * for (const { step, workload } of replaySpeculativeRun(record, 0, LLAMA3_8B, 'sd:apps64')) plan(workload);
 * ```
 */
export function* replaySpeculativeRun(
  record: SpeculativeRecord,
  run: number,
  shape: WorkloadShape,
  name: string,
): Generator<{ step: number; workload: Workload }> {
  const steps = record.runs[run]?.acceptLengths.length ?? 0;
  for (let step = 0; step < steps; step++)
    yield { step, workload: speculativeStep(record, run, step, shape, name) };
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
