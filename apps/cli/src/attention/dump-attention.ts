import { mkdirSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import path from 'node:path';
import type { PlanStrategy } from '@deft/core';
import type { BuiltWorkload } from '../workloads/build-workload.js';
import { workloadQueries } from '../workloads/parse-workload.js';
import type { AttentionInputs } from './random-inputs.js';

/** Version of the dump layout written by {@link dumpAttention}. */
export const DUMP_FORMAT_VERSION = 1;

/**
 * Writes one layer's inputs and output so another tool can check them: little-endian f32 files
 * `q.bin` `[queries, heads, headDim]`, `k.bin` and `v.bin` `[treeTokens, kvHeads, headDim]` (tokens in
 * node order: all of node 0, then node 1, …), `out.bin` `[queries, heads, headDim]`, and `meta.json`
 * (shapes, softmax scale, node parents and token counts, the queries as `[nodeIndex, position]`).
 * Returns the paths written.
 *
 * @throws the file system's error when `directory` cannot be created or written.
 * @example
 * ```ts
 * dumpAttention('out/sd-t64', built, inputs, output, 'deft-flatten');
 * ```
 */
export function dumpAttention(
  directory: string,
  built: BuiltWorkload,
  inputs: AttentionInputs,
  output: Float32Array,
  strategy: PlanStrategy,
): string[] {
  const { workload } = built;
  const numQueries = built.queries.nodes.length;
  const treeTokens = built.tokenSlots.length;
  mkdirSync(directory, { recursive: true });
  const files: [string, Float32Array][] = [
    ['q.bin', inputs.q],
    ['k.bin', inputs.k],
    ['v.bin', inputs.v],
    ['out.bin', output],
  ];
  const written: string[] = [];
  for (const [name, data] of files) {
    const file = path.join(directory, name);
    writeFileSync(file, littleEndianBytes(data));
    written.push(file);
  }
  const queryShape = [numQueries, workload.heads, workload.headDim];
  const kvShape = [treeTokens, workload.kvHeads, workload.headDim];
  const meta = {
    format: 'deft-attn-dump',
    version: DUMP_FORMAT_VERSION,
    workload: workload.name,
    strategy,
    kvDtype: workload.dtype,
    heads: workload.heads,
    kvHeads: workload.kvHeads,
    headDim: workload.headDim,
    pageSize: workload.pageSize,
    seed: workload.seed,
    scale: inputs.scale,
    numQueries,
    treeTokens,
    files: {
      'q.bin': { dtype: 'f32', endianness: 'little', shape: queryShape, axes: ['query', 'head', 'dim'] },
      'k.bin': { dtype: 'f32', endianness: 'little', shape: kvShape, axes: ['token', 'kvHead', 'dim'] },
      'v.bin': { dtype: 'f32', endianness: 'little', shape: kvShape, axes: ['token', 'kvHead', 'dim'] },
      'out.bin': { dtype: 'f32', endianness: 'little', shape: queryShape, axes: ['query', 'head', 'dim'] },
    },
    semantics:
      'Tokens are in node order (all of node 0, then node 1, ...). Query i at (node, position) sees every token of ' +
      "the node's ancestors and tokens 0..position of its own node; out = softmax(scale * q . k) v over those tokens. " +
      'Query head h uses KV head floor(h / (heads / kvHeads)). K and V are exact in f16.',
    nodes: workload.nodes.map((node) => ({ parent: node.parent, tokens: node.tokens })),
    queries: workloadQueries(workload),
  };
  const metaFile = path.join(directory, 'meta.json');
  writeFileSync(metaFile, `${JSON.stringify(meta, null, 2)}\n`);
  written.push(metaFile);
  return written;
}

function littleEndianBytes(data: Float32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const bytes = new Uint8Array(data.byteLength);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < data.length; index++) view.setFloat32(index * 4, data[index]!, true);
  return bytes;
}
