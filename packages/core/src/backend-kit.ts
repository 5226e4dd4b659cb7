// `@deft/core/backend-kit`: what authors of a backend share: the argument checks every `Backend` and
// `ModelOps` implementation runs before touching memory, and the host top-k used where a device has none.
export { argmaxHost, topKHost } from './ops/host-top-k.js';
export type { PageCopyCheckOptions, SlotCheckOptions } from './validate/backend-arguments.js';
export {
  checkAttentionShape,
  checkAttentionTensor,
  checkDType,
  checkKVStorageDescriptor,
  checkKVValueCount,
  checkLayerIndex,
  checkPageCopy,
  checkSlotIndices,
  checkTensorDescriptor,
  checkUploadData,
} from './validate/backend-arguments.js';
export type { MatmulShape, MatrixView, RopeOperands } from './validate/model-op-operands.js';
export {
  checkAddRmsNorm,
  checkMatmulGroup,
  checkMatmulOperands,
  checkQuantizedWeight,
  checkRmsNormOperands,
  checkRopeOperands,
  checkSlotCopy,
  checkTemperature,
  checkTopK,
  matrixOf,
  requireDistinct,
  requireEqual,
  requireF32,
  requireIndices,
  rmsNormGroups,
} from './validate/model-op-operands.js';
