export type { ChatMessage, ChatRenderOptions } from './chat/chat-template.js';
export { ChatTemplate } from './chat/chat-template.js';
export type { LlamaConfig } from './config/llama-config.js';
export { validateLlamaConfig } from './config/llama-config.js';
export { ModelFormatError } from './errors/model-format-error.js';
export type { ForwardBatch, ForwardResult } from './forward/forward-batch.js';
export type {
  DeviceForward,
  LlamaModelOptions,
  ModelKVStorageOptions,
  RandomLlamaOptions,
} from './forward/llama-model.js';
export { LlamaModel } from './forward/llama-model.js';
export type { ByteSource, FileRole } from './loaders/byte-source.js';
export { bytesSource, openFileSource } from './loaders/byte-source.js';
export type { GgufLoadOptions, GgufModel, LoadProgress } from './loaders/gguf-model.js';
export { loadGgufModel, parseGgufModel } from './loaders/gguf-model.js';
export type { Llama2cLoadOptions } from './loaders/llama2c-checkpoint.js';
export { loadLlama2cCheckpoint, parseLlama2cCheckpoint } from './loaders/llama2c-checkpoint.js';
export { tokenizerFromGgufMetadata } from './tokenizer/gguf-tokenizer.js';
export { loadLlama2cTokenizer, parseLlama2cTokenizer } from './tokenizer/llama2c-tokenizer.js';
export type { PreTokenizerName } from './tokenizer/pre-tokenizers.js';
export { PRE_TOKENIZERS } from './tokenizer/pre-tokenizers.js';
export type {
  DecodeOptions,
  EncodeOptions,
  TokenizerVocabulary,
  TokenKind,
  TokenTextStream,
} from './tokenizer/tokenizer.js';
export { Tokenizer } from './tokenizer/tokenizer.js';
export { loadTokenizerJson, tokenizerFromJson } from './tokenizer/tokenizer-json.js';
export type { EncodedWeight, HostWeight, WeightEncoding } from './weights/host-weight.js';
export { decodeHostWeight } from './weights/host-weight.js';
export type { LlamaCheckpoint, LlamaLayerWeights, LlamaWeights } from './weights/llama-weights.js';
export { validateLlamaWeights } from './weights/llama-weights.js';
