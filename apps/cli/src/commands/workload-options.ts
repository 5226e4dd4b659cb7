import type { DType } from '@deft/core';
import type { OptionSpecs, OptionValues } from '../cli/parse-command-line.js';
import { choiceOption, integerOption, requiredStringOption } from '../cli/parse-command-line.js';
import { UsageError } from '../errors/usage-error.js';
import { resolveWorkload } from '../workloads/resolve-workload.js';
import type { Workload } from '../workloads/workload.js';

/** The options every command that takes one workload accepts. */
export const WORKLOAD_OPTIONS: OptionSpecs = {
  workload: { type: 'string', short: 'w' },
  'page-size': { type: 'string' },
  step: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  'head-dim': { type: 'string' },
  dtype: { type: 'string' },
};

/** Help lines of {@link WORKLOAD_OPTIONS}. */
export const WORKLOAD_HELP = `  -w, --workload W   a built-in workload (few-shot-b20, few-shot-b50, sd-t64, sd-t256, reasoning,
                     beam-w8), a replayed record (tot:docmerge:0, sd:apps64, …) or a JSON file
  --step N           decoding step of a replayed record (default: a reasoning tree's widest step,
                     a speculative run's first)
  --page-size N      tokens per KV page (default: the workload's; 16 for built-ins)
  --heads N, --kv-heads N, --head-dim N, --dtype f32|f16
                     override the workload's attention shape (built-ins: 32, 8, 128, f16)`;

/**
 * Resolves `--workload` with `--step`, `--page-size` and the shape overrides applied.
 *
 * @throws {UsageError} for a missing or unknown workload or a bad number.
 */
export function workloadFromOptions(values: OptionValues, command: string, cwd: string): Workload {
  const name = requiredStringOption(values, 'workload', command);
  const step = integerOption(values, 'step', 0);
  return applyWorkloadOverrides(resolveWorkload(name, step === undefined ? { cwd } : { cwd, step }), values);
}

/**
 * Applies `--page-size`, `--heads`, `--kv-heads`, `--head-dim` and `--dtype` to a workload.
 *
 * @throws {UsageError} for a bad number or KV heads that do not divide the heads.
 */
export function applyWorkloadOverrides(workload: Workload, values: OptionValues): Workload {
  const pageSize = integerOption(values, 'page-size', 1);
  const heads = integerOption(values, 'heads', 1);
  const kvHeads = integerOption(values, 'kv-heads', 1);
  const headDim = integerOption(values, 'head-dim', 1);
  const dtype = choiceOption<DType>(values, 'dtype', ['f32', 'f16']);
  const result: Workload = {
    ...workload,
    ...(pageSize === undefined ? {} : { pageSize }),
    ...(heads === undefined ? {} : { heads }),
    ...(kvHeads === undefined ? {} : { kvHeads }),
    ...(headDim === undefined ? {} : { headDim }),
    ...(dtype === undefined ? {} : { dtype }),
  };
  if (result.heads % result.kvHeads !== 0) {
    throw new UsageError(`--kv-heads (${result.kvHeads}) must divide the number of heads (${result.heads})`, {
      argument: '--kv-heads',
    });
  }
  return result;
}
