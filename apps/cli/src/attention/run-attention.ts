import type { Backend, DeviceTensor, KVStorage, PreparedPlan, TreeAttentionPlan } from '@deft/core';
import type { BuiltWorkload } from '../workloads/build-workload.js';
import type { AttentionInputs } from './random-inputs.js';

/**
 * One workload's KV cache and queries uploaded to a backend, ready to run tree attention over any plan.
 * `dispose()` frees everything it allocated (idempotent).
 */
export interface AttentionSession {
  readonly backend: Backend;
  /**
   * Runs one layer of tree attention over `plan` `repetitions` times (at least once) and returns the last
   * output `[numQueries, heads, headDim]` and each run's wall time in microseconds (enqueue to finished).
   */
  run(
    plan: TreeAttentionPlan,
    repetitions?: number,
  ): Promise<{ output: Float32Array; layerMicroseconds: number[] }>;
  dispose(): void;
}

/**
 * Uploads a workload's K/V (into its pages, in the workload's dtype) and Q to a backend.
 *
 * @throws whatever the backend throws for an unsupported dtype or a storage too large for it.
 * @example
 * ```ts
 * const session = createAttentionSession(createCpuBackend(), built, randomAttentionInputs(built));
 * const { output } = await session.run(plan);
 * session.dispose();
 * ```
 */
export function createAttentionSession(
  backend: Backend,
  built: BuiltWorkload,
  inputs: AttentionInputs,
): AttentionSession {
  const { workload } = built;
  const numQueries = built.queries.nodes.length;
  const owned: { dispose(): void }[] = [];
  let storage: KVStorage;
  let q: DeviceTensor;
  let out: DeviceTensor;
  try {
    storage = backend.createKVStorage({
      numLayers: 1,
      numPages: built.numSlots / workload.pageSize,
      pageSize: workload.pageSize,
      numKvHeads: workload.kvHeads,
      headDim: workload.headDim,
      dtype: workload.dtype,
    });
    owned.push(storage);
    backend.writeKV(storage, 0, built.tokenSlots, inputs.k, inputs.v);
    q = backend.createTensor({ shape: [numQueries, workload.heads, workload.headDim], dtype: 'f32' });
    owned.push(q);
    backend.uploadTensor(q, inputs.q);
    out = backend.createTensor({ shape: [numQueries, workload.heads, workload.headDim], dtype: 'f32' });
    owned.push(out);
  } catch (error) {
    for (const resource of owned) resource.dispose();
    throw error;
  }
  let disposed = false;
  return {
    backend,
    async run(plan, repetitions = 1) {
      const prepared: PreparedPlan = backend.preparePlan(plan, built.shape);
      try {
        const layerMicroseconds: number[] = [];
        for (let run = 0; run < Math.max(1, repetitions); run++) {
          const before = performance.now();
          backend.treeAttention({ storage, layer: 0, plan: prepared, q, out, scale: inputs.scale });
          await backend.synchronize();
          layerMicroseconds.push((performance.now() - before) * 1000);
        }
        const output = await backend.downloadTensor(out);
        return { output, layerMicroseconds };
      } finally {
        prepared.dispose();
      }
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const resource of owned.reverse()) resource.dispose();
    },
  };
}
