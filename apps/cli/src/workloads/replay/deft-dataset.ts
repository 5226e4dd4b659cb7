import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseReasoningTree, type ReasoningTree } from './reasoning-tree.js';
import { parseSpeculativeRecord, type SpeculativeRecord } from './speculative-record.js';

/** Reasoning tasks of the dataset: `tot:<task>` reads `<task>ToT.json`. */
export const REASONING_TASKS = ['docmerge', 'keyword', 'set128', 'sorting128'] as const;
export type ReasoningTask = (typeof REASONING_TASKS)[number];

/** Token-tree sizes of the dataset's speculative-decoding records: `sd:apps<N>` reads `APPS_tree_size<N>.json`. */
export const SPECULATIVE_TREE_SIZES = [32, 64, 128, 256] as const;

/** The repository root (four levels above this folder: apps/cli/src/workloads/replay). */
export const REPOSITORY_ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));

/**
 * Folder of the DeFT dataset: `$DEFT_DATASET_DIR` when set, else `../shared/workloads/deft-dataset`
 * beside the repository.
 */
export function datasetDirectory(): string {
  const fromEnvironment = process.env.DEFT_DATASET_DIR;
  if (fromEnvironment !== undefined && fromEnvironment !== '') return path.resolve(fromEnvironment);
  return path.resolve(REPOSITORY_ROOT, '../shared/workloads/deft-dataset');
}

/** True when the dataset folder holds its files. */
export function datasetAvailable(directory = datasetDirectory()): boolean {
  return existsSync(path.join(directory, 'docmergeToT.json'));
}

const cache = new Map<string, unknown>();

function readJson(file: string): unknown {
  let value = cache.get(file);
  if (value === undefined) {
    value = JSON.parse(readFileSync(file, 'utf8'));
    cache.set(file, value);
  }
  return value;
}

/** Path of a dataset file; throws a plain `Error` saying where it was looked for when absent. */
export function datasetFile(fileName: string, directory = datasetDirectory()): string {
  const file = path.join(directory, fileName);
  if (!existsSync(file)) {
    throw new Error(
      `${fileName} not found in ${directory} (set DEFT_DATASET_DIR to the deft-dataset folder)`,
    );
  }
  return file;
}

/** Number of trees in a reasoning task's file. */
export function reasoningTreeCount(task: ReasoningTask, directory = datasetDirectory()): number {
  const trees = readJson(datasetFile(`${task}ToT.json`, directory));
  return Array.isArray(trees) ? trees.length : 0;
}

/** Tree `index` of a reasoning task (`undefined` when the file has fewer trees). */
export function loadReasoningTree(
  task: ReasoningTask,
  index: number,
  directory = datasetDirectory(),
): ReasoningTree | undefined {
  const trees = readJson(datasetFile(`${task}ToT.json`, directory));
  if (!Array.isArray(trees) || trees[index] === undefined) return undefined;
  return parseReasoningTree(trees[index]);
}

/** The speculative-decoding record with a token tree of `size` tokens. */
export function loadSpeculativeRecord(size: number, directory = datasetDirectory()): SpeculativeRecord {
  return parseSpeculativeRecord(readJson(datasetFile(`APPS_tree_size${size}.json`, directory)));
}
