import type { Workload, WorkloadNode } from './workload.js';

/** Llama-3-8B attention: 32 query heads, 8 KV heads, head dim 128, fp16 KV, 16-token pages (seed 1). */
export const LLAMA3_8B = {
  heads: 32,
  kvHeads: 8,
  headDim: 128,
  dtype: 'f16',
  pageSize: 16,
  seed: 1,
} as const;

function fewShot(branches: number): Workload {
  const nodes: WorkloadNode[] = [{ parent: -1, tokens: 4000 }];
  for (let branch = 0; branch < branches; branch++) nodes.push({ parent: 0, tokens: 400 });
  return { name: `few-shot-b${branches}`, ...LLAMA3_8B, nodes };
}

function speculative(leaves: number): Workload {
  const nodes: WorkloadNode[] = [{ parent: -1, tokens: 1000 }];
  for (let leaf = 0; leaf < leaves; leaf++) nodes.push({ parent: 0, tokens: 1 });
  return { name: `sd-t${leaves}`, ...LLAMA3_8B, nodes };
}

function reasoning(): Workload {
  const nodes: WorkloadNode[] = [{ parent: -1, tokens: 1100 }];
  for (let thought = 0; thought < 10; thought++) {
    const parent = nodes.length;
    nodes.push({ parent: 0, tokens: 300 });
    for (let child = 0; child < 3; child++) nodes.push({ parent, tokens: 200 });
  }
  return { name: 'reasoning', ...LLAMA3_8B, nodes };
}

function beam(width: number, depth: number, stepTokens: number): Workload {
  const grown: WorkloadNode[] = [{ parent: -1, tokens: 1000 }];
  let frontier = [0];
  for (let level = 0; level < depth; level++) {
    const next: number[] = [];
    // Beam-like: each level keeps `width` beams, forked from the first half of the previous level.
    for (let beamIndex = 0; beamIndex < width; beamIndex++) {
      next.push(grown.length);
      grown.push({
        parent: frontier[beamIndex % Math.max(1, Math.ceil(frontier.length / 2))]!,
        tokens: stepTokens,
      });
    }
    frontier = next;
  }
  // Beams that were not continued are pruned (their KV freed): keep the ancestors of the live beams.
  const keep = new Uint8Array(grown.length);
  for (const leaf of frontier)
    for (let node = leaf; node >= 0 && keep[node] === 0; node = grown[node]!.parent) keep[node] = 1;
  const newIndex = new Int32Array(grown.length).fill(-1);
  const nodes: WorkloadNode[] = [];
  grown.forEach((node, index) => {
    if (keep[index] === 0) return;
    newIndex[index] = nodes.length;
    nodes.push({ parent: node.parent < 0 ? -1 : newIndex[node.parent]!, tokens: node.tokens });
  });
  return { name: `beam-w${width}`, ...LLAMA3_8B, nodes };
}

/**
 * The built-in workloads: the DeFT paper's synthetic shapes with Llama-3-8B attention.
 * - `few-shot-b20` / `few-shot-b50`: a 4000-token prompt and 20 / 50 branches of 400 tokens;
 * - `sd-t64` / `sd-t256`: a 1000-token prefix and 64 / 256 one-token leaves (speculative token trees);
 * - `reasoning`: a 1100-token prompt, 10 thoughts of 300 tokens, each with 3 children of 200;
 * - `beam-w8`: a 1000-token prompt and 8 live beams after 4 levels of 64 tokens, each level forking the best
 *   half of the previous one (beams not continued are pruned): 21 nodes, 2280 tokens.
 */
export const BUILTIN_WORKLOADS: readonly Workload[] = [
  fewShot(20),
  fewShot(50),
  speculative(64),
  speculative(256),
  reasoning(),
  beam(8, 4, 64),
];

/** The five workloads the DeFT paper's kernels are compared on. */
export const PAPER_WORKLOAD_NAMES = [
  'few-shot-b20',
  'few-shot-b50',
  'sd-t64',
  'sd-t256',
  'reasoning',
] as const;

/** A built-in workload by name, or `undefined`. */
export function findBuiltinWorkload(name: string): Workload | undefined {
  return BUILTIN_WORKLOADS.find((workload) => workload.name === name);
}
