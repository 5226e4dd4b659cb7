export type {
  AttentionTimestampWrites,
  WebGpuBackend,
  WebGpuBackendOptions,
  WebGpuFeatures,
} from './backend/webgpu-backend.js';
export { createWebGpuBackend } from './backend/webgpu-backend.js';
export type { RequestWebGpuDeviceOptions, WebGpuDeviceHandle } from './device/request-device.js';
export { describeAdapter, requestWebGpuDevice } from './device/request-device.js';
export type { AttentionKernelConfig } from './shaders/attention-kernel-config.js';
