import { type ModelBackend, isModelBackend } from '@deft/core';
import { CpuKVStorage, CpuTensor, createCpuBackend, createCpuModelOps } from '@deft/kernels-cpu';

/** The CPU reference backend with its model ops. */
export function cpuModelBackend(): ModelBackend {
  const backend = createCpuBackend();
  if (isModelBackend(backend)) return backend;
  const ops = createCpuModelOps({
    tensorData: (tensor, argument) => {
      if (!(tensor instanceof CpuTensor)) throw new Error(`${argument} is not a CPU tensor`);
      return tensor.data;
    },
    kvLayers: (storage, argument) => {
      if (!(storage instanceof CpuKVStorage)) throw new Error(`${argument} is not a CPU KV storage`);
      return storage;
    },
  });
  return Object.assign(backend, { ops });
}
