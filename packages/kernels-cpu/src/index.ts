export type { CpuBackend, CpuBackendOptions } from './backend/create-cpu-backend.js';
export { createCpuBackend } from './backend/create-cpu-backend.js';
