import { UnsupportedError } from '@deft/core';
import { ModelFormatError } from '../errors/model-format-error.js';
import type { ByteSource } from './byte-source.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" read little-endian
/** Bytes of the fixed-size GGUF value types, by type id (8 string and 9 array are variable). */
const SCALAR_BYTES = new Map<number, number>([
  [0, 1],
  [1, 1],
  [2, 2],
  [3, 2],
  [4, 4],
  [5, 4],
  [6, 4],
  [7, 1],
  [10, 8],
  [11, 8],
  [12, 8],
]);
const STRING_TYPE = 8;
const ARRAY_TYPE = 9;
/** Deepest nesting of arrays in a metadata value. */
const MAX_ARRAY_DEPTH = 2;
/** Most dimensions of a tensor (ggml's GGML_MAX_DIMS). */
const MAX_DIMENSIONS = 4;
/** Bytes read from the source at a time while walking the header. */
const CHUNK_BYTES = 64 * 1024;

/** Reads a source front to back, buffering only as far as the walk has gone. */
class HeaderCursor {
  offset = 0;
  private buffer = new Uint8Array(0);
  private view = new DataView(this.buffer.buffer);

  constructor(private readonly source: ByteSource) {}

  /** Makes `count` bytes from the cursor readable, or throws a `ModelFormatError` when the file ends first. */
  async need(count: number, what: string): Promise<void> {
    const end = this.offset + count;
    if (!Number.isSafeInteger(end) || end > this.source.size) {
      throw new ModelFormatError(
        `${this.source.name} is not a readable GGUF file: its header's ${what} needs bytes ${this.offset}..${end}, but the file has ${this.source.size} (truncated or corrupt)`,
        { argument: this.source.name, expected: `at least ${end} bytes`, actual: this.source.size },
      );
    }
    if (end <= this.buffer.byteLength) return;
    // Doubling keeps the walk linear in the header's size (vocabularies make headers of many megabytes).
    const length = Math.min(
      this.source.size,
      Math.max(end, this.buffer.byteLength * 2, this.buffer.byteLength + CHUNK_BYTES),
    );
    const more = await this.source.read(this.buffer.byteLength, length - this.buffer.byteLength);
    const grown = new Uint8Array(length);
    grown.set(this.buffer);
    grown.set(more, this.buffer.byteLength);
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  async u32(what: string): Promise<number> {
    await this.need(4, what);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }

  /** A u64 as a number; larger than the file means corrupt, so anything past 2^53 is reported as such. */
  async u64(what: string): Promise<number> {
    await this.need(8, what);
    const value = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }

  async skip(count: number, what: string): Promise<void> {
    await this.need(count, what);
    this.offset += count;
  }

  async string(what: string): Promise<void> {
    await this.skip(await this.u64(`${what} length`), what);
  }
}

function corrupt(source: ByteSource, message: string, expected: unknown, actual: unknown): ModelFormatError {
  return new ModelFormatError(`${source.name} is not a readable GGUF file: ${message}`, {
    argument: source.name,
    expected,
    actual,
  });
}

async function skipValue(cursor: HeaderCursor, source: ByteSource, type: number, what: string, depth = 0) {
  const scalar = SCALAR_BYTES.get(type);
  if (scalar !== undefined) return cursor.skip(scalar, what);
  if (type === STRING_TYPE) return cursor.string(what);
  if (type !== ARRAY_TYPE || depth >= MAX_ARRAY_DEPTH) {
    throw corrupt(source, `${what} has the unknown value type ${type}`, 'a GGUF value type 0..12', type);
  }
  const elementType = await cursor.u32(`${what} element type`);
  const count = await cursor.u64(`${what} element count`);
  const elementBytes = SCALAR_BYTES.get(elementType);
  if (elementBytes !== undefined) return cursor.skip(count * elementBytes, what);
  // Variable-size elements take at least 8 bytes each (a string's length, an array's type and count).
  await cursor.need(count * 8, what);
  for (let index = 0; index < count; index++) await skipValue(cursor, source, elementType, what, depth + 1);
}

/**
 * Walks a GGUF header (magic, version, tensor and metadata counts, every key-value pair and tensor info)
 * checking each count and length against the bytes that remain, before any parser sizes anything from
 * them. Cost: one pass over the header; memory: the header's bytes.
 *
 * @throws ModelFormatError for a truncated or corrupt header; UnsupportedError for a GGUF version other than 2 or 3.
 */
export async function checkGgufHeader(source: ByteSource): Promise<void> {
  const cursor = new HeaderCursor(source);
  const magic = await cursor.u32('magic');
  if (magic !== GGUF_MAGIC) throw corrupt(source, 'the file does not start with "GGUF"', 'GGUF', magic);
  const version = await cursor.u32('version');
  if (version !== 2 && version !== 3) {
    throw new UnsupportedError(`${source.name} is GGUF version ${version}; versions 2 and 3 are supported`, {
      argument: source.name,
      expected: [2, 3],
      actual: version,
    });
  }
  const tensorCount = await cursor.u64('tensor count');
  const metadataCount = await cursor.u64('metadata count');
  // A tensor info takes at least 28 bytes (name length, dimension count, one dimension, type, offset), a
  // key-value pair at least 13 (key length, type, a 1-byte value).
  const least = tensorCount * 28 + metadataCount * 13;
  if (least > source.size) {
    throw corrupt(
      source,
      `the header announces ${tensorCount} tensors and ${metadataCount} metadata entries, more than ${source.size} bytes can hold`,
      `at most ${source.size} bytes of header`,
      least,
    );
  }
  for (let index = 0; index < metadataCount; index++) {
    await cursor.string(`metadata key ${index}`);
    const type = await cursor.u32(`metadata value type ${index}`);
    await skipValue(cursor, source, type, `metadata value ${index}`);
  }
  for (let index = 0; index < tensorCount; index++) {
    await cursor.string(`tensor name ${index}`);
    const dimensions = await cursor.u32(`tensor ${index} dimension count`);
    if (dimensions < 1 || dimensions > MAX_DIMENSIONS) {
      throw corrupt(
        source,
        `tensor ${index} has ${dimensions} dimensions`,
        `1..${MAX_DIMENSIONS}`,
        dimensions,
      );
    }
    let elements = 1;
    for (let axis = 0; axis < dimensions; axis++) elements *= await cursor.u64(`tensor ${index} shape`);
    if (elements > source.size * 8) {
      throw corrupt(
        source,
        `tensor ${index} has ${elements} elements, more than the file can hold`,
        '<= file size',
        elements,
      );
    }
    await cursor.skip(4 + 8, `tensor ${index} type and offset`);
  }
}
