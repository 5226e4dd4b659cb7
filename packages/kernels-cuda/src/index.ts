export type {
  CudaAttentionKernel,
  CudaBackend,
  CudaBackendOptions,
  CudaExecutor,
  CudaPlanOptions,
} from './backend/create-cuda-backend.js';
export { createCudaBackend, DEFAULT_CUDA_EXECUTOR } from './backend/create-cuda-backend.js';
export type { CudaKVStorage } from './backend/cuda-kv-storage.js';
export type { CudaModelOps } from './backend/cuda-model-ops.js';
export type { CudaPreparedPlan, CudaScheduleSummary } from './backend/cuda-prepared-plan.js';
export type { CudaTensor } from './backend/cuda-tensor.js';
export type { CudaDeviceInfo } from './native/load-addon.js';
export type { ScheduleOptions } from './plan/build-schedule.js';
export type { TaskScheduleOptions } from './plan/build-tasks.js';
export type {
  CopyBandwidth,
  CudaBlockProfile,
  CudaBlockRecord,
  CudaEvent,
  CudaReadOnce,
  CudaTiming,
  TensorRate,
} from './timing/cuda-timing.js';
