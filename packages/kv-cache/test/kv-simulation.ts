import type { Backend, KVStorage } from '@deft/core';
import type { SlotMoves } from '../src/cache/slot-moves.js';

/**
 * Host simulation of KV contents for tests: one f32 value per slot, a `copyPages` backend and an
 * `onSlotMoves` handler that copy values the way a real backend copies K and V.
 */
export interface KVSimulation {
  readonly values: Float32Array;
  readonly backend: Pick<Backend, 'copyPages'>;
  readonly storage: KVStorage;
  readonly onSlotMoves: (moves: SlotMoves) => void;
  copies: number;
}

export function createKVSimulation(numPages: number, pageSize: number): KVSimulation {
  const values = new Float32Array(numPages * pageSize).fill(Number.NaN);
  const storage: KVStorage = {
    backend: 'simulation',
    descriptor: { numLayers: 1, numPages, pageSize, numKvHeads: 1, headDim: 1, dtype: 'f32' },
    disposed: false,
    dispose() {},
  };
  const simulation: KVSimulation = {
    values,
    storage,
    copies: 0,
    backend: {
      copyPages(_storage, source, target) {
        for (let index = 0; index < source.length; index++) {
          values.copyWithin(
            target[index]! * pageSize,
            source[index]! * pageSize,
            (source[index]! + 1) * pageSize,
          );
          simulation.copies++;
        }
      },
    },
    onSlotMoves({ source, target }) {
      const read = Array.from(source, (slot) => values[slot]!);
      for (let index = 0; index < target.length; index++) values[target[index]!] = read[index]!;
    },
  };
  return simulation;
}

/** KV value of each position of a sequence: a rolling hash of the tokens up to it (what real KV depends on). */
export function prefixValues(tokens: ArrayLike<number>): number[] {
  const result: number[] = [];
  let hash = 17;
  for (let index = 0; index < tokens.length; index++) {
    hash = (hash * 31 + tokens[index]! + 1) % 8_388_593;
    result.push(hash);
  }
  return result;
}
