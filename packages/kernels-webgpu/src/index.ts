export type {
  AttentionTimestampWrites,
  WebGpuBackend,
  WebGpuBackendOptions,
  WebGpuFeatures,
} from './backend/webgpu-backend.js';
export { createWebGpuBackend } from './backend/webgpu-backend.js';
export type { RequestWebGpuDeviceOptions, WebGpuDeviceHandle } from './device/request-device.js';
export { describeAdapter, requestWebGpuDevice } from './device/request-device.js';
export type {
  AttentionKernelConfig,
  AttentionKernelLayout,
  AttentionKernelRequirements,
} from './shaders/attention-kernel-config.js';
export {
  attentionKernelLayout,
  chooseAttentionKernelConfig,
} from './shaders/attention-kernel-config.js';
export { attentionShader } from './shaders/attention-shader.js';
export { EMPTY_LSE } from './shaders/empty-lse.js';
export type { KvFormat } from './shaders/kv-format.js';
export { mergeShader } from './shaders/merge-shader.js';
