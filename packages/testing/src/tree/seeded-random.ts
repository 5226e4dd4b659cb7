/**
 * The mulberry32 stream behind {@link SeededRandom}, as a function: the same seed gives the same
 * uniform numbers in `[0, 1)` on every machine. Not for cryptography.
 *
 * @example
 * ```ts
 * const random = seededRandom(42);
 * random(); // 0.6011037519201636
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A small, fast, seeded pseudo-random generator (mulberry32) for reproducible test cases.
 * Not for cryptography.
 *
 * @example
 * ```ts
 * const random = new SeededRandom(42);
 * random.integer(1, 6); // the same sequence for the same seed
 * ```
 */
export class SeededRandom {
  private readonly stream: () => number;

  constructor(seed: number) {
    this.stream = seededRandom((Math.trunc(seed) ^ 0x9e3779b9) >>> 0);
  }

  /** A float in `[0, 1)`. */
  next(): number {
    return this.stream();
  }

  /** An integer in `[minimum, maximum]` (both inclusive). */
  integer(minimum: number, maximum: number): number {
    return minimum + Math.floor(this.next() * (maximum - minimum + 1));
  }

  /** True with probability `probability`. */
  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /** One element of a non-empty array. */
  pick<T>(values: readonly T[]): T {
    return values[Math.floor(this.next() * values.length)]!;
  }

  /** A float in `[-1, 1)`. */
  signed(): number {
    return this.next() * 2 - 1;
  }

  /** Shuffles an array in place (Fisher–Yates) and returns it. */
  shuffle<T extends { [index: number]: unknown; length: number }>(values: T): T {
    for (let index = values.length - 1; index > 0; index--) {
      const other = Math.floor(this.next() * (index + 1));
      const swap = values[index];
      values[index] = values[other];
      values[other] = swap;
    }
    return values;
  }

  /** A Float32Array of `length` values uniform in `[-1, 1)`. */
  float32Array(length: number): Float32Array {
    const values = new Float32Array(length);
    for (let index = 0; index < length; index++) values[index] = this.signed();
    return values;
  }
}
