export type {
  CudaAttentionKernel,
  CudaBackend,
  CudaBackendOptions,
  CudaPlanOptions,
} from './backend/create-cuda-backend.js';
export { createCudaBackend } from './backend/create-cuda-backend.js';
export { CudaKVStorage } from './backend/cuda-kv-storage.js';
export type { CudaScheduleSummary } from './backend/cuda-prepared-plan.js';
export { CudaPreparedPlan } from './backend/cuda-prepared-plan.js';
export { CudaTensor } from './backend/cuda-tensor.js';
export type { CudaAddon, CudaDeviceInfo, CudaProbe, NativePlanSummary } from './native/load-addon.js';
export { CUDA_ADDON_ENV, loadCudaAddon } from './native/load-addon.js';
export type { ExecutionSchedule, ScheduleOptions } from './plan/build-schedule.js';
export { buildSchedule } from './plan/build-schedule.js';
export type { CopyBandwidth, CudaEvent, CudaReadOnce, CudaTiming } from './timing/cuda-timing.js';
