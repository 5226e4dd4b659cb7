/**
 * `GPUBufferUsage` / `GPUMapMode` bit values from the WebGPU specification. Spelled out here so the
 * package works in Node without installing the `webgpu` package's globals into `globalThis`.
 */
export const BUFFER_USAGE = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  QUERY_RESOLVE: 0x0200,
} as const;

/** `GPUMapMode` bit values. */
export const MAP_MODE = { READ: 0x0001, WRITE: 0x0002 } as const;
