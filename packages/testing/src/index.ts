export type { StrategyCheck, TreeCheckCase } from './attention/check-tree-attention.js';
export { checkTreeAttention } from './attention/check-tree-attention.js';
export { ATTENTION_TOLERANCE, maxRelativeError, relativeError } from './attention/relative-error.js';
export type { RecordedCall, RecordingBackend } from './backend/recording-backend.js';
export { createRecordingBackend } from './backend/recording-backend.js';
export type { Stories260KGolden } from './model/shared-models.js';
export {
  hasStories260K,
  repoRoot,
  stories260K,
  stories260KDirectory,
  stories260KSkipReason,
} from './model/shared-models.js';
export { loadStories260K } from './model/stories260k.js';
export type { GgufCheckpointOptions } from './model/synthetic-checkpoint.js';
export {
  syntheticCheckpoint,
  writeGgufCheckpoint,
  writeLlama2cLegacy,
  writeLlama2cVersion1,
} from './model/synthetic-checkpoint.js';
export { tinyModel } from './model/tiny-model.js';
export type { MetadataValue, TestTensor } from './model/write-test-files.js';
export { f32Bytes, seededValues, u16Bytes, writeGguf } from './model/write-test-files.js';
export type { BuildPagedTreeOptions, PagedTree, TreeNodeSpec } from './tree/build-paged-tree.js';
export { buildPagedTree } from './tree/build-paged-tree.js';
export { defaultQueries } from './tree/default-queries.js';
export type { RandomTreeCase, RandomTreeCaseOptions, RandomTreeKind } from './tree/random-tree-case.js';
export { RANDOM_TREE_KINDS, randomTreeCase } from './tree/random-tree-case.js';
export { SeededRandom, seededRandom } from './tree/seeded-random.js';
