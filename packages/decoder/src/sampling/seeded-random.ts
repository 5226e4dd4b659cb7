/**
 * A small seeded pseudo-random generator (SplitMix32 seeding, Mulberry32 stream). Streams with the
 * same `(seed, stream)` produce the same numbers on every platform, so sampling is reproducible.
 *
 * @example
 * ```ts
 * const random = new SeededRandom(42, 3); // stream 3 of seed 42 (e.g. branch 3 of best-of-N)
 * random.next(); // a number in [0, 1)
 * ```
 */
export class SeededRandom {
  private state: number;

  /** @param seed any integer; @param stream an independent stream of the same seed (default 0) */
  constructor(seed: number, stream = 0) {
    let mixed = (Math.trunc(seed) ^ Math.imul(Math.trunc(stream) + 1, 0x9e3779b9)) >>> 0;
    mixed = Math.imul(mixed ^ (mixed >>> 16), 0x85ebca6b) >>> 0;
    mixed = Math.imul(mixed ^ (mixed >>> 13), 0xc2b2ae35) >>> 0;
    this.state = (mixed ^ (mixed >>> 16)) >>> 0;
  }

  /** The next number in `[0, 1)`. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let value = this.state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  }
}
