import { existsSync, readFileSync } from 'node:fs';
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
import { reasoningTreeAtStep, widestStep } from './replay/reasoning-tree.js';
import { speculativeStep } from './replay/speculative-record.js';
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

const HELP_TEXT = `a built-in name (${BUILTIN_WORKLOADS.map((workload) => workload.name).join(', ')}), tot:TASK[:TREE[:STEP]], sd:appsN[:RUN[:STEP]] or a JSON file`;

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
  if (name.startsWith('tot:')) return resolveReasoning(name, options);
  if (name.startsWith('sd:')) return resolveSpeculative(name, options);
  const file = path.resolve(options.cwd, name);
  if (!existsSync(file)) {
    throw new UsageError(`unknown workload '${name}': use ${HELP_TEXT}`, {
      argument: 'workload',
      actual: name,
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

function resolveReasoning(name: string, options: ResolveOptions): Workload {
  const [, task, treeText = '0', stepText, ...rest] = name.split(':');
  if (!(REASONING_TASKS as readonly string[]).includes(task ?? '') || rest.length > 0) {
    throw new UsageError(
      `unknown workload '${name}': reasoning trees are tot:{${REASONING_TASKS.join(',')}}[:TREE[:STEP]]`,
      {
        argument: 'workload',
        actual: name,
      },
    );
  }
  requireDataset(name);
  const treeIndex = parseIndex(treeText, 'tree', name);
  const tree = loadReasoningTree(task as ReasoningTask, treeIndex);
  if (tree === undefined)
    throw new UsageError(`workload '${name}': ${task}ToT.json has no tree ${treeIndex}`, {
      argument: 'workload',
    });
  const step =
    stepText !== undefined ? parseIndex(stepText, 'step', name) : (options.step ?? widestStep(tree));
  const workload = reasoningTreeAtStep(tree, step, LLAMA3_8B, `tot:${task}:${treeIndex}`);
  if (workload === undefined) {
    throw new UsageError(
      `workload '${name}': no node is live at step ${step} (steps run 1 .. ${tree.lastStep})`,
      {
        argument: 'step',
        actual: step,
      },
    );
  }
  return workload;
}

function resolveSpeculative(name: string, options: ResolveOptions): Workload {
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
  const step = stepText !== undefined ? parseIndex(stepText, 'step', name) : (options.step ?? 0);
  try {
    return speculativeStep(record, run, step, LLAMA3_8B, `sd:apps${size}`);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error)) {
      throw new UsageError(`workload '${name}': ${error.message}`, {
        argument: error.argument ?? 'workload',
        cause: error,
      });
    }
    throw error;
  }
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
