export {};
export { createCpuModelOps } from './ops/cpu-model-ops.js';
export type { CpuTensorData } from './ops/cpu-model-ops.js';
