import { CapacityError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { MAX_TYPED_ARRAY_LENGTH } from './cpu-kv-storage.js';
import { createCpuBackend } from './create-cpu-backend.js';

const SHAPE = { numLayers: 2, pageSize: 16, numKvHeads: 8, headDim: 128, dtype: 'f16' } as const;

describe('CPU KV storage capacity', () => {
  it('refuses a layer above the typed-array limit at once, naming elements and the limit', () => {
    const backend = createCpuBackend();
    const started = performance.now();
    let caught: unknown;
    try {
      backend.createKVStorage({ ...SHAPE, numPages: 2 ** 22 });
    } catch (error) {
      caught = error;
    }
    expect(performance.now() - started).toBeLessThan(1000);
    expect(CapacityError.isInstance(caught)).toBe(true);
    expect((caught as Error).message).toContain(`${2 ** 22 * 16 * 8 * 128} elements`);
    expect((caught as Error).message).toContain(`limit of ${MAX_TYPED_ARRAY_LENGTH}`);
  });

  it('refuses storage above hostMemoryBudgetBytes and accepts it at the budget', () => {
    const bytes = 2 * 2 * 4 * 16 * 8 * 128 * 2; // K and V, 2 layers, 4 pages, f16
    const backend = createCpuBackend({ hostMemoryBudgetBytes: bytes - 1 });
    expect(() => backend.createKVStorage({ ...SHAPE, numPages: 4 })).toThrow(
      new RegExp(`need ${bytes} bytes, above the host-memory budget of ${bytes - 1} bytes`),
    );
    const fits = createCpuBackend({ hostMemoryBudgetBytes: bytes });
    fits.createKVStorage({ ...SHAPE, numPages: 4 }).dispose();
  });
});
