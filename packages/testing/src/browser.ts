// The part of the test support that runs in a browser: no Node built-ins, no model files.
export type { StrategyCheck, TreeCheckCase } from './attention/check-tree-attention.js';
export { checkTreeAttention } from './attention/check-tree-attention.js';
export { ATTENTION_TOLERANCE, maxRelativeError, relativeError } from './attention/relative-error.js';
export type { BuildPagedTreeOptions, PagedTree, TreeNodeSpec } from './tree/build-paged-tree.js';
export { buildPagedTree } from './tree/build-paged-tree.js';
export { defaultQueries } from './tree/default-queries.js';
export type { RandomTreeCase, RandomTreeCaseOptions, RandomTreeKind } from './tree/random-tree-case.js';
export { RANDOM_TREE_KINDS, randomTreeCase } from './tree/random-tree-case.js';
export { SeededRandom, seededRandom } from './tree/seeded-random.js';
