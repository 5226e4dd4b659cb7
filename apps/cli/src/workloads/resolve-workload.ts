import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '@deft/core';
import { UsageError } from '../errors/usage-error.js';
import { BUILTIN_WORKLOADS, findBuiltinWorkload, LLAMA3_8B } from './builtin.js';
import { parseWorkloadJson } from './parse-workload.js';
import {
  datasetAvailable,
  datasetDirectory,
  loadReasoningTree,
  loadSpeculativeRecord,
  REASONING_TASKS,
  type ReasoningTask,
  SPECULATIVE_TREE_SIZES,
} from './replay/deft-dataset.js';
import {
  type ReasoningTree,
  reasoningTreeAtStep,
  replayReasoningTree,
  widestStep,
} from './replay/reasoning-tree.js';
import {
  replaySpeculativeRun,
  type SpeculativeRecord,
  speculativeStep,
} from './replay/speculative-record.js';
import type { Workload } from './workload.js';

/** How {@link resolveWorkload} interprets a name. */
export interface ResolveOptions {
  /** Directory a workload file path is relative to. */
  readonly cwd: string;
  /** Step of a replayed record when the name does not give one. */
  readonly step?: number;
}

/** The replayed workloads `deft bench` adds when the dataset is present: each task's tree 0 and every token tree. */
export const REPLAYED_WORKLOAD_NAMES: readonly string[] = [
  ...REASONING_TASKS.map((task) => `tot:${task}:0`),
  ...SPECULATIVE_TREE_SIZES.map((size) => `sd:apps${size}`),
];

const HELP_TEXT =
  `a built-in name (${BUILTIN_WORKLOADS.map((workload) => workload.name).join(', ')}), ` +
  'tot:TASK[:TREE[:STEP]], sd:appsN[:RUN[:STEP]] or a JSON file';

/**
 * Turns a workload name into a {@link Workload}:
 * - a built-in name (`few-shot-b20`, `sd-t64`, …);
 * - `tot:<task>[:<tree>[:<step>]]`: a reasoning tree of the DeFT dataset (`docmerge`, `keyword`, `set128`,
 *   `sorting128`), tree 0 by default, at its widest step unless a step is given;
 * - `sd:apps<N>[:<run>[:<step>]]`: the speculative-decoding token tree of `N` tokens (32, 64, 128, 256) over
 *   the prefix of run 0 at step 0 by default;
 * - otherwise a path to a workload JSON file.
 *
 * @throws {UsageError} with a one-line message (exit code 2) for an unknown name, a missing dataset, or a
 *   malformed file (the message names the field).
 * @example
 * ```ts
 * const workload = resolveWorkload('tot:docmerge:0', { cwd: process.cwd() });
 * ```
 */
export function resolveWorkload(name: string, options: ResolveOptions): Workload {
  const builtin = findBuiltinWorkload(name);
  if (builtin !== undefined) return builtin;
  const replay = parseReplayName(name);
  if (replay !== undefined) return replaySnapshot(replay, options.step);
  const file = path.resolve(options.cwd, name);
  if (!existsSync(file)) {
    if (looksLikePath(name)) {
      throw new UsageError(
        `workload file ${name} does not exist (looked for ${file}); check the path, or use ${HELP_TEXT}`,
        { argument: 'workload', expected: 'an existing workload JSON file', actual: file },
      );
    }
    throw new UsageError(`unknown workload '${name}': use ${HELP_TEXT}`, {
      argument: 'workload',
      actual: name,
    });
  }
  if (statSync(file).isDirectory()) {
    throw new UsageError(`workload ${name} is a directory, expected a workload JSON file`, {
      argument: 'workload',
      expected: 'a workload JSON file',
      actual: file,
    });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read workload file ${name}: ${(error as Error).message}`, {
      argument: 'workload',
      cause: error,
    });
  }
  try {
    return parseWorkloadJson(text);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error)) {
      throw new UsageError(`workload ${name}: ${error.message}`, {
        argument: error.argument ?? 'workload',
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * Every step of a replayed record, in order: `tot:<task>[:<tree>]` yields the reasoning tree at each
 * decoding step, `sd:apps<N>[:<run>]` the prefix and token tree of each verification step.
 *
 * @throws {UsageError} when `name` is not a replayable record (a built-in or a file) or names a step.
 * @example
 * ```ts
 * for (const { step, workload } of resolveReplay('tot:docmerge:0').steps()) console.log(step, workload.queries?.length);
 * ```
 */
export function resolveReplay(name: string): {
  readonly name: string;
  readonly count: number;
  steps(): Generator<{ step: number; workload: Workload }>;
} {
  const replay = parseReplayName(name);
  if (replay === undefined || replay.step !== undefined) {
    throw new UsageError(
      `--replay needs a replayed record without a step (tot:TASK[:TREE] or sd:appsN[:RUN]), got '${name}'`,
      {
        argument: '--replay',
        actual: name,
      },
    );
  }
  if (replay.kind === 'reasoning') {
    const { tree, label } = replay;
    let count = 0;
    for (let step = 1; step <= tree.lastStep; step++)
      if (reasoningTreeAtStep(tree, step, LLAMA3_8B, label) !== undefined) count++;
    return { name: label, count, steps: () => replayReasoningTree(tree, LLAMA3_8B, label) };
  }
  const { record, run, label } = replay;
  return {
    name: `${label}:${run}`,
    count: record.runs[run]!.acceptLengths.length,
    steps: () => replaySpeculativeRun(record, run, LLAMA3_8B, label),
  };
}

type ReplayName =
  | { kind: 'reasoning'; name: string; label: string; tree: ReasoningTree; step: number | undefined }
  | {
      kind: 'speculative';
      name: string;
      label: string;
      record: SpeculativeRecord;
      run: number;
      step: number | undefined;
    };

/** Parses `tot:` and `sd:` names (loading their record), or returns `undefined` for other names. */
function parseReplayName(name: string): ReplayName | undefined {
  if (name.startsWith('tot:')) {
    const [, task, treeText = '0', stepText, ...rest] = name.split(':');
    if (!(REASONING_TASKS as readonly string[]).includes(task ?? '') || rest.length > 0) {
      throw new UsageError(
        `unknown workload '${name}': reasoning trees are tot:{${REASONING_TASKS.join(',')}}[:TREE[:STEP]]`,
        { argument: 'workload', actual: name },
      );
    }
    requireDataset(name);
    const treeIndex = parseIndex(treeText, 'tree', name);
    const tree = loadReasoningTree(task as ReasoningTask, treeIndex);
    if (tree === undefined) {
      throw new UsageError(`workload '${name}': ${task}ToT.json has no tree ${treeIndex}`, {
        argument: 'workload',
      });
    }
    const step = stepText === undefined ? undefined : parseIndex(stepText, 'step', name);
    return { kind: 'reasoning', name, label: `tot:${task}:${treeIndex}`, tree, step };
  }
  if (name.startsWith('sd:')) {
    const [, file, runText = '0', stepText, ...rest] = name.split(':');
    const size = Number(/^apps(\d+)$/.exec(file ?? '')?.[1]);
    if (!(SPECULATIVE_TREE_SIZES as readonly number[]).includes(size) || rest.length > 0) {
      throw new UsageError(
        `unknown workload '${name}': speculative records are sd:apps{${SPECULATIVE_TREE_SIZES.join(',')}}[:RUN[:STEP]]`,
        { argument: 'workload', actual: name },
      );
    }
    requireDataset(name);
    const record = loadSpeculativeRecord(size);
    const run = parseIndex(runText, 'run', name);
    if (record.runs[run] === undefined) {
      throw new UsageError(
        `workload '${name}': APPS_tree_size${size}.json has runs 0 .. ${record.runs.length - 1}`,
        {
          argument: 'workload',
          actual: run,
        },
      );
    }
    const step = stepText === undefined ? undefined : parseIndex(stepText, 'step', name);
    return { kind: 'speculative', name, label: `sd:apps${size}`, record, run, step };
  }
  return undefined;
}

function replaySnapshot(replay: ReplayName, defaultStep: number | undefined): Workload {
  if (replay.kind === 'reasoning') {
    const step = replay.step ?? defaultStep ?? widestStep(replay.tree);
    const workload = reasoningTreeAtStep(replay.tree, step, LLAMA3_8B, replay.label);
    if (workload === undefined) {
      throw new UsageError(
        `workload '${replay.name}': no node is live at step ${step} (steps run 1 .. ${replay.tree.lastStep})`,
        { argument: 'step', actual: step },
      );
    }
    return workload;
  }
  const step = replay.step ?? defaultStep ?? 0;
  try {
    return speculativeStep(replay.record, replay.run, step, LLAMA3_8B, replay.label);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error)) {
      throw new UsageError(`workload '${replay.name}': ${error.message}`, {
        argument: error.argument ?? 'workload',
        cause: error,
      });
    }
    throw error;
  }
}

/** A name meant as a file: it has a directory separator or a file extension (built-in names have neither). */
function looksLikePath(name: string): boolean {
  return /[\\/]/.test(name) || /\.[A-Za-z0-9]+$/.test(name);
}

function requireDataset(name: string): void {
  if (!datasetAvailable()) {
    throw new UsageError(
      `workload '${name}' replays the DeFT dataset, not found at ${datasetDirectory()} (set DEFT_DATASET_DIR)`,
      { argument: 'workload' },
    );
  }
}

function parseIndex(text: string, what: string, name: string): number {
  if (!/^\d+$/.test(text)) {
    throw new UsageError(`workload '${name}': ${what} must be an integer >= 0, got '${text}'`, {
      argument: what,
      actual: text,
    });
  }
  return Number(text);
}
