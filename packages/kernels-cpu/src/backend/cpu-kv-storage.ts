import type { KVStorage, KVStorageDescriptor } from '@deft/core';
import { CapacityError, DisposedError } from '@deft/core';

/** Longest typed array every supported JavaScript engine can create, in elements (Node 20's V8: 2^32). */
export const MAX_TYPED_ARRAY_LENGTH = 2 ** 32;

/**
 * Refuses, before allocating, a KV storage whose per-layer K or V exceeds the longest typed array or whose
 * K and V over all layers exceed `budgetBytes`.
 *
 * @throws {CapacityError} naming the size needed and the limit.
 */
export function checkKVStorageSize(descriptor: KVStorageDescriptor, budgetBytes: number): void {
  const { numLayers, numPages, pageSize, numKvHeads, headDim, dtype } = descriptor;
  const elements = numPages * pageSize * numKvHeads * headDim;
  const shape = `[${numPages}, ${pageSize}, ${numKvHeads}, ${headDim}]`;
  if (elements > MAX_TYPED_ARRAY_LENGTH) {
    throw new CapacityError(
      `CPU KV storage: one layer of K ${shape} has ${elements} elements, above the typed-array limit of ` +
        `${MAX_TYPED_ARRAY_LENGTH}: use fewer pages`,
      { argument: 'numPages', expected: `<= ${MAX_TYPED_ARRAY_LENGTH} elements per layer`, actual: elements },
    );
  }
  const bytes = 2 * numLayers * elements * (dtype === 'f16' ? 2 : 4);
  if (bytes > budgetBytes) {
    throw new CapacityError(
      `CPU KV storage: K and V of ${numLayers} layers ${shape} ${dtype} need ${bytes} bytes, above the host-memory ` +
        `budget of ${budgetBytes} bytes: use fewer pages or raise hostMemoryBudgetBytes`,
      { argument: 'numPages', expected: `<= ${budgetBytes} bytes`, actual: bytes },
    );
  }
}

/** One layer of K or V: `[numPages, pageSize, numKvHeads, headDim]`, f32 values or binary16 bits. */
export type CpuKVArray = Float32Array | Uint16Array;

/**
 * Paged KV storage of the CPU backend: per layer, K and V each a typed array laid out
 * `[numPages, pageSize, numKvHeads, headDim]` (`Float32Array` for f32, binary16 bits in a `Uint16Array`
 * for f16), zero-initialised. Equivalently `[numSlots, numKvHeads, headDim]` with `slot = page * pageSize + offset`.
 */
export class CpuKVStorage implements KVStorage {
  readonly backend = 'cpu';
  readonly descriptor: KVStorageDescriptor;
  /** @internal The backend that created the storage. */
  readonly owner: object;
  #keys: CpuKVArray[] | undefined;
  #values: CpuKVArray[] | undefined;

  constructor(owner: object, descriptor: KVStorageDescriptor) {
    this.owner = owner;
    this.descriptor = Object.freeze({ ...descriptor });
    const size = descriptor.numPages * descriptor.pageSize * descriptor.numKvHeads * descriptor.headDim;
    const make = (): CpuKVArray =>
      descriptor.dtype === 'f16' ? new Uint16Array(size) : new Float32Array(size);
    this.#keys = Array.from({ length: descriptor.numLayers }, make);
    this.#values = Array.from({ length: descriptor.numLayers }, make);
  }

  get disposed(): boolean {
    return this.#keys === undefined;
  }

  /** Slots of the storage: `numPages × pageSize`. */
  get numSlots(): number {
    return this.descriptor.numPages * this.descriptor.pageSize;
  }

  /** K of `layer`, `[numSlots, numKvHeads, headDim]`. @throws DisposedError after dispose. */
  keys(layer: number): CpuKVArray {
    if (this.#keys === undefined) throw new DisposedError('CPU KV storage');
    return this.#keys[layer]!;
  }

  /** V of `layer`, `[numSlots, numKvHeads, headDim]`. @throws DisposedError after dispose. */
  values(layer: number): CpuKVArray {
    if (this.#values === undefined) throw new DisposedError('CPU KV storage');
    return this.#values[layer]!;
  }

  dispose(): void {
    this.#keys = undefined;
    this.#values = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
