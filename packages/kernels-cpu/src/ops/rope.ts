import type { RopeStyle } from '@deft/core';

/**
 * Rotary position embedding in place on host arrays (angles in float64).
 * Pair `i` (`0 <= i < headDim / 2`) of every head of row `r` rotates by
 * `positions[r] · theta^(−2i / headDim) / frequencyFactors[i]` (factors all 1 when omitted);
 * `interleaved` pairs dimensions `(2i, 2i + 1)`, `half` pairs `(i, i + headDim / 2)`.
 *
 * @param x `[rows, numHeads, headDim]` f32, rotated in place
 * @param positions `[rows]`
 * @param frequencyFactors `[headDim / 2]` divisors of the pairs' frequencies (already validated)
 * @example
 * ```ts
 * ropeHost(q, positions, positions.length, 8, 8, 10000, 'interleaved');
 * ```
 */
export function ropeHost(
  x: Float32Array,
  positions: Int32Array,
  rows: number,
  numHeads: number,
  headDim: number,
  theta: number,
  style: RopeStyle,
  frequencyFactors?: Float32Array,
): void {
  const pairs = headDim / 2;
  const frequencies = new Float64Array(pairs);
  for (let pair = 0; pair < pairs; pair++)
    frequencies[pair] = theta ** ((-2 * pair) / headDim) / (frequencyFactors?.[pair] ?? 1);
  const cosines = new Float64Array(pairs);
  const sines = new Float64Array(pairs);
  const secondOffset = style === 'interleaved' ? 1 : pairs;
  const stride = style === 'interleaved' ? 2 : 1;
  for (let row = 0; row < rows; row++) {
    const position = positions[row]!;
    for (let pair = 0; pair < pairs; pair++) {
      const angle = position * frequencies[pair]!;
      cosines[pair] = Math.cos(angle);
      sines[pair] = Math.sin(angle);
    }
    for (let head = 0; head < numHeads; head++) {
      const base = (row * numHeads + head) * headDim;
      for (let pair = 0; pair < pairs; pair++) {
        const first = base + pair * stride;
        const second = first + secondOffset;
        const a = x[first]!;
        const b = x[second]!;
        x[first] = a * cosines[pair]! - b * sines[pair]!;
        x[second] = a * sines[pair]! + b * cosines[pair]!;
      }
    }
  }
}
