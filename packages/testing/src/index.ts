export type { BuildPagedTreeOptions, PagedTree, TreeNodeSpec } from './build-paged-tree.js';
export { buildPagedTree } from './build-paged-tree.js';
export { defaultQueries } from './default-queries.js';
export type { RandomTreeCase, RandomTreeCaseOptions, RandomTreeKind } from './random-tree-case.js';
export { RANDOM_TREE_KINDS, randomTreeCase } from './random-tree-case.js';
export type { RecordedCall, RecordingBackend } from './recording-backend.js';
export { createRecordingBackend } from './recording-backend.js';
export { SeededRandom } from './seeded-random.js';
