import {
  type BlockQuantization,
  dequantizeBlocks,
  InvalidArgumentError,
  isBlockQuantization,
} from '@deft/core';
import { decodeBf16, decodeF16 } from '../loaders/decode-floats.js';

/**
 * How a weight kept in its file's encoding is stored: `f16` (IEEE binary16), `bf16`, or one of the
 * GGUF block quantizations `q8_0`, `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q4_k`, `q5_k`, `q6_k` (`BlockQuantization` of `@deft/core`).
 */
export type WeightEncoding = 'f16' | 'bf16' | BlockQuantization;

/**
 * A weight kept as the file stores it, so loading a model takes about the file's size in host memory:
 * the raw little-endian bytes, decoded (or dequantized) only when it is uploaded or read.
 */
export interface EncodedWeight {
  readonly encoding: WeightEncoding;
  /** The bytes as in the file: `[length · 2]` for f16 / bf16, whole blocks for the quantized encodings. */
  readonly bytes: Uint8Array;
  /** Number of values it decodes to. */
  readonly length: number;
}

/** A host weight: f32 values, or a weight kept in its file's encoding. */
export type HostWeight = Float32Array | EncodedWeight;

/** Number of values of a host weight. */
export function hostWeightLength(weight: HostWeight): number {
  return weight.length;
}

/** True for a weight kept in its file's encoding (not a `Float32Array`). */
export function isEncodedWeight(weight: unknown): weight is EncodedWeight {
  return (
    typeof weight === 'object' &&
    weight !== null &&
    !(weight instanceof Float32Array) &&
    typeof (weight as EncodedWeight).encoding === 'string' &&
    (weight as EncodedWeight).bytes instanceof Uint8Array
  );
}

/**
 * The f32 values of a host weight: the array itself for f32, a new array decoded (or dequantized) from
 * the bytes otherwise. Cost: one pass over the weight; memory: 4 bytes per value.
 *
 * @throws InvalidArgumentError for an unknown encoding or bytes of the wrong size.
 * @example
 * ```ts
 * const values = decodeHostWeight(checkpoint.weights.layers[0]!.query);
 * ```
 */
export function decodeHostWeight(weight: HostWeight): Float32Array {
  if (weight instanceof Float32Array) return weight;
  const { encoding, bytes, length } = weight;
  if (encoding === 'f16' || encoding === 'bf16') {
    if (bytes.byteLength !== length * 2) {
      throw new InvalidArgumentError(`an ${encoding} weight of ${length} values needs ${length * 2} bytes`, {
        argument: 'weight.bytes',
        expected: length * 2,
        actual: bytes.byteLength,
      });
    }
    return encoding === 'f16' ? decodeF16(bytes, 0, length) : decodeBf16(bytes, 0, length);
  }
  if (isBlockQuantization(encoding)) return dequantizeBlocks(encoding, bytes, length);
  throw new InvalidArgumentError(`unknown weight encoding ${String(encoding)}`, {
    argument: 'weight.encoding',
    expected: "'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k' | 'q5_k' | 'q6_k'",
    actual: encoding,
  });
}
