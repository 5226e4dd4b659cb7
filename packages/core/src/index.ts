export type {
  Backend,
  BackendCapabilities,
  PreparedPlan,
  TreeAttentionArgs,
} from './backend/backend.js';
export { BACKEND_CONTRACT_VERSION } from './backend/backend.js';
export type { KVStorage, KVStorageDescriptor } from './backend/kv-storage.js';
export { kvBytesPerToken } from './backend/kv-storage.js';
export type { ModelBackend, ModelOps, RopeOptions, RopeStyle, TopKResult } from './backend/model-ops.js';
export { isModelBackend } from './backend/model-ops.js';
export { BackendError } from './errors/backend-error.js';
export { CapacityError } from './errors/capacity-error.js';
export type { DeftErrorDetails } from './errors/deft-error.js';
export { DeftError, isDeftErrorWithCode } from './errors/deft-error.js';
export { DisposedError } from './errors/disposed-error.js';
export { InvalidArgumentError } from './errors/invalid-argument-error.js';
export { InvalidStateError } from './errors/invalid-state-error.js';
export { NotFoundError } from './errors/not-found-error.js';
export { UnsupportedError } from './errors/unsupported-error.js';
export type {
  AttentionShape,
  PartialStateLayout,
  PlanIO,
  PlanStrategy,
  TreeAttentionPlan,
} from './plan/plan.js';
export { PLAN_FORMAT_VERSION, PLAN_STRATEGIES } from './plan/plan.js';
export type { PlanLimits } from './plan/validate-plan.js';
export { validatePlan } from './plan/validate-plan.js';
export type { BlockQuantization } from './tensor/block-quantization.js';
export {
  BLOCK_QUANTIZATIONS,
  blockQuantizationLayout,
  dequantizeBlock,
  dequantizeBlocks,
  isBlockQuantization,
  quantizedByteLength,
} from './tensor/block-quantization.js';
export type { DType } from './tensor/dtype.js';
export { DTYPES, dtypeBytes, isDType } from './tensor/dtype.js';
export { f16BitsToF32, f16ToF32Table, f32ToF16Bits, fromF16Array, toF16Array } from './tensor/f16.js';
export type { DeviceTensor, Shape, TensorDescriptor } from './tensor/tensor.js';
export { formatShape, shapeSize } from './tensor/tensor.js';
export type { PagedTreeView, TreeQueries } from './tree/paged-tree-view.js';
