import type { KVFormat } from './kv-format.js';

/**
 * Compile-time shape of the attention kernel (one pipeline per distinct config).
 *
 * A workgroup handles one (KV head, chunk) work unit. It stages `tileTokens` tokens of K and V in
 * workgroup memory and loops over tiles of `tileRows` query-head rows (a row is one query × one query
 * head of the KV head's group). In the score phase, `tokenLanes = tileTokens / tokensPerThread`
 * consecutive threads share `rowsPerThread` rows; each thread computes a
 * `rowsPerThread × tokensPerThread` block of scores. In the output phase, `floor(threads / units)`
 * rows are covered per pass, one 4-element unit of `headDim` per thread.
 */
export interface AttentionKernelConfig {
  /** Head dimension, a multiple of 4. */
  readonly headDim: number;
  /** Query heads per KV head (`numHeads / numKvHeads`). */
  readonly groupSize: number;
  readonly kvFormat: KVFormat;
  /** Invocations per workgroup. */
  readonly threads: number;
  /** KV tokens staged per tile. */
  readonly tileTokens: number;
  /** Scores per thread along the token axis. */
  readonly tokensPerThread: number;
  /** Scores per thread along the row axis. */
  readonly rowsPerThread: number;
  /**
   * Lanes of a row group reduced with `subgroupShuffleXor` (a power of two `<= tokenLanes`); the rest
   * of the reduction goes through workgroup memory. 0 or 1: no subgroup operations.
   */
  readonly subgroupLanes: number;
}

/** Quantities derived from an {@link AttentionKernelConfig}. */
export interface AttentionKernelLayout {
  /** 4-element units per head row. */
  readonly units: number;
  /** Threads sharing a row group in the score phase. */
  readonly tokenLanes: number;
  readonly rowGroups: number;
  /** Query-head rows per tile. */
  readonly tileRows: number;
  /** Units per staged K/V token (f32, one unit of padding against bank conflicts). */
  readonly kvStride: number;
  /** Rows covered per output pass. */
  readonly outRowStride: number;
  /** Output passes per thread. */
  readonly outPasses: number;
  /** Partial values per row reduced through workgroup memory (1: none). */
  readonly scratchLanes: number;
  /** Bytes of workgroup memory the kernel declares. */
  readonly workgroupBytes: number;
}

const roundUp16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** Derives the layout of a config (no validation beyond arithmetic). */
export function attentionKernelLayout(config: AttentionKernelConfig): AttentionKernelLayout {
  const units = config.headDim / 4;
  const tokenLanes = config.tileTokens / config.tokensPerThread;
  const rowGroups = config.threads / tokenLanes;
  const tileRows = rowGroups * config.rowsPerThread;
  const kvStride = units + 1;
  const outRowStride = Math.floor(config.threads / units);
  const outPasses = Math.ceil(tileRows / outRowStride);
  const reducedBySubgroup = Math.max(1, config.subgroupLanes);
  const scratchLanes = tokenLanes / reducedBySubgroup;
  const workgroupBytes =
    roundUp16(tileRows * units * 16) +
    2 * roundUp16(config.tileTokens * kvStride * 16) +
    roundUp16(tileRows * config.tileTokens * 4) +
    roundUp16(config.tileTokens * 4) +
    3 * roundUp16(tileRows * 4) +
    (scratchLanes > 1 ? roundUp16(tileRows * scratchLanes * 4) : 0);
  return {
    units,
    tokenLanes,
    rowGroups,
    tileRows,
    kvStride,
    outRowStride,
    outPasses,
    scratchLanes,
    workgroupBytes,
  };
}

/** What {@link chooseAttentionKernelConfig} picks a config from. */
export interface AttentionKernelRequirements {
  readonly headDim: number;
  readonly groupSize: number;
  readonly kvFormat: KVFormat;
  /** `maxComputeWorkgroupStorageSize` of the device. */
  readonly workgroupStorageBytes: number;
  /** Smallest subgroup size of the device, or 0 to use no subgroup operations. */
  readonly subgroupMinSize: number;
  /** Invocations per workgroup (default 128). */
  readonly threads?: number;
}

const BLOCK_SHAPES: readonly (readonly [number, number])[] = [
  [4, 2],
  [4, 1],
  [2, 2],
  [2, 1],
  [1, 1],
];

/**
 * Picks the largest KV tile (then the largest score block) whose workgroup memory fits the device.
 * Returns `undefined` when nothing fits (a head dimension too large for the device).
 *
 * @example
 * ```ts
 * chooseAttentionKernelConfig({ headDim: 128, groupSize: 4, kvFormat: 'f16-packed', workgroupStorageBytes: 49152, subgroupMinSize: 32 });
 * // { tileTokens: 64, tokensPerThread: 4, rowsPerThread: 2, subgroupLanes: 16, ... }: 16 rows × 64 tokens
 * ```
 */
export function chooseAttentionKernelConfig(
  requirements: AttentionKernelRequirements,
): AttentionKernelConfig | undefined {
  const threads = requirements.threads ?? 128;
  const units = requirements.headDim / 4;
  if (units > threads) return undefined;
  for (const tileTokens of [64, 32, 16, 8, 4]) {
    for (const [tokensPerThread, rowsPerThread] of BLOCK_SHAPES) {
      const tokenLanes = tileTokens / tokensPerThread;
      if (!Number.isInteger(tokenLanes) || tokenLanes > threads || threads % tokenLanes !== 0) continue;
      let subgroupLanes = 0;
      if (requirements.subgroupMinSize >= 2) {
        subgroupLanes = 1;
        while (subgroupLanes * 2 <= Math.min(tokenLanes, requirements.subgroupMinSize)) subgroupLanes *= 2;
      }
      const config: AttentionKernelConfig = {
        headDim: requirements.headDim,
        groupSize: requirements.groupSize,
        kvFormat: requirements.kvFormat,
        threads,
        tileTokens,
        tokensPerThread,
        rowsPerThread,
        subgroupLanes,
      };
      if (attentionKernelLayout(config).workgroupBytes <= requirements.workgroupStorageBytes) return config;
    }
  }
  return undefined;
}
