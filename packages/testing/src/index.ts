// Everything of the browser entry, plus the parts that need Node (model files, backends on the host).

export type { RecordedCall, RecordingBackend } from './backend/recording-backend.js';
export { createRecordingBackend } from './backend/recording-backend.js';
export * from './browser.js';
export type { TestQuantization } from './model/quantize-blocks.js';
export { blockValues, GGML_TYPE_IDS, quantizeBlocks } from './model/quantize-blocks.js';
export type { RealVocabulary, RealVocabularyName } from './model/real-vocabulary.js';
export { realVocabulary, tinyLlama3Gguf } from './model/real-vocabulary.js';
export { greedyDecode, prefillLogits, referenceLogits } from './model/reference-forward.js';
export type { Stories260KGolden } from './model/shared-models.js';
export {
  hasStories260K,
  repoRoot,
  stories260K,
  stories260KDirectory,
  stories260KSkipReason,
} from './model/shared-models.js';
export { loadStories260K } from './model/stories260k.js';
export { superBlockConfig } from './model/super-block-config.js';
export type { GgufCheckpointOptions } from './model/synthetic-checkpoint.js';
export {
  ggufMatrix,
  randomCheckpoint,
  syntheticCheckpoint,
  writeGgufCheckpoint,
  writeLlama2cLegacy,
  writeLlama2cVersion1,
} from './model/synthetic-checkpoint.js';
export { tinyModel } from './model/tiny-model.js';
export { TOKENIZER_CORPUS } from './model/tokenizer-corpus.js';
export type { MetadataValue, TestTensor } from './model/write-test-files.js';
export {
  f32Bytes,
  seededValues,
  u16Bytes,
  writeGguf,
  writeLlama2cTokenizer,
} from './model/write-test-files.js';
