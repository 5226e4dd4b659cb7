const conversionView = new DataView(new ArrayBuffer(4));

/** Converts a number to IEEE binary16 bits (round to nearest even), as stored in `Uint16Array` KV. */
export function f32ToF16Bits(value: number): number {
  conversionView.setFloat32(0, value);
  const bits = conversionView.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0); // inf / NaN
  let halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // underflow to signed zero
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const halfway = 1 << (shift - 1);
    const remainder = mantissa & ((1 << shift) - 1);
    let result = mantissa >>> shift;
    if (remainder > halfway || (remainder === halfway && (result & 1) === 1)) result += 1;
    return sign | result;
  }
  const remainder = mantissa & 0x1fff;
  let result = (halfExponent << 10) | (mantissa >>> 13);
  if (remainder > 0x1000 || (remainder === 0x1000 && (result & 1) === 1)) result += 1;
  halfExponent = result >>> 10;
  return sign | result;
}

/**
 * Converts IEEE binary16 bits to a number, exactly: subnormals, signed zeros and infinities keep their value,
 * every NaN pattern gives `NaN`. The bit-exact scalar conversion; {@link f16ToF32Table} holds its results.
 */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Converts a whole array to binary16 bits. */
export function toF16Array(values: ArrayLike<number>): Uint16Array {
  const result = new Uint16Array(values.length);
  for (let index = 0; index < values.length; index++) result[index] = f32ToF16Bits(values[index]!);
  return result;
}

let decodeTable: Float32Array | undefined;

/**
 * The f32 value of every binary16 bit pattern, `[65536]` indexed by the bits: `table[bits]` equals
 * `f16BitsToF32(bits)` for every pattern (NaN patterns decode to the canonical NaN). Built on first use
 * (256 KiB) and shared by every caller, so read it and never write into it. A lookup is about ten times
 * faster than the scalar conversion; use it in loops that decode f16 data.
 *
 * @example
 * ```ts
 * const table = f16ToF32Table();
 * for (let index = 0; index < count; index++) target[index] = table[halves[index]!]!;
 * ```
 */
export function f16ToF32Table(): Float32Array {
  if (decodeTable === undefined) {
    const table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = f16BitsToF32(bits);
    decodeTable = table;
  }
  return decodeTable;
}

/**
 * Converts binary16 bits back to f32 values `[bits.length]`, with the same results as
 * {@link f16BitsToF32} element by element (through {@link f16ToF32Table}).
 */
export function fromF16Array(bits: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const result = new Float32Array(bits.length);
  for (let index = 0; index < bits.length; index++) result[index] = table[bits[index]!]!;
  return result;
}
