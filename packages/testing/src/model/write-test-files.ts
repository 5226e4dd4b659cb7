/** Writers of small synthetic model files for loader tests. */

type MetadataValue =
  | { type: 'u32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'f32s'; value: number[] }
  | { type: 'i32s'; value: number[] };

export interface TestTensor {
  readonly name: string;
  /** GGUF order: innermost dimension first. */
  readonly shape: number[];
  /** GGML type id (0 F32, 1 F16, 8 Q8_0, 30 BF16). */
  readonly type: number;
  readonly data: Uint8Array;
}

class ByteWriter {
  private readonly chunks: Uint8Array[] = [];
  length = 0;
  bytes(value: Uint8Array): void {
    this.chunks.push(value);
    this.length += value.length;
  }
  private fixed(size: number, write: (view: DataView) => void): void {
    const buffer = new Uint8Array(size);
    write(new DataView(buffer.buffer));
    this.bytes(buffer);
  }
  u32(value: number): void {
    this.fixed(4, (view) => view.setUint32(0, value, true));
  }
  i32(value: number): void {
    this.fixed(4, (view) => view.setInt32(0, value, true));
  }
  u64(value: number): void {
    this.fixed(8, (view) => view.setBigUint64(0, BigInt(value), true));
  }
  f32(value: number): void {
    this.fixed(4, (view) => view.setFloat32(0, value, true));
  }
  string(value: string): void {
    const encoded = new TextEncoder().encode(value);
    this.u64(encoded.length);
    this.bytes(encoded);
  }
  finish(): Uint8Array {
    const result = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      result.set(chunk, offset);
      offset += chunk.length;
    }
    return result;
  }
}

/** Writes a GGUF v3 file with the given metadata and tensors (alignment 32). */
export function writeGguf(metadata: Record<string, MetadataValue>, tensors: TestTensor[]): Uint8Array {
  const writer = new ByteWriter();
  writer.bytes(new TextEncoder().encode('GGUF'));
  writer.u32(3);
  writer.u64(tensors.length);
  writer.u64(Object.keys(metadata).length);
  for (const [key, entry] of Object.entries(metadata)) {
    writer.string(key);
    switch (entry.type) {
      case 'u32':
        writer.u32(4);
        writer.u32(entry.value);
        break;
      case 'f32':
        writer.u32(6);
        writer.f32(entry.value);
        break;
      case 'bool':
        writer.u32(7);
        writer.bytes(Uint8Array.of(entry.value ? 1 : 0));
        break;
      case 'string':
        writer.u32(8);
        writer.string(entry.value);
        break;
      case 'strings':
        writer.u32(9);
        writer.u32(8);
        writer.u64(entry.value.length);
        for (const value of entry.value) writer.string(value);
        break;
      case 'f32s':
        writer.u32(9);
        writer.u32(6);
        writer.u64(entry.value.length);
        for (const value of entry.value) writer.f32(value);
        break;
      case 'i32s':
        writer.u32(9);
        writer.u32(5);
        writer.u64(entry.value.length);
        for (const value of entry.value) writer.i32(value);
        break;
    }
  }
  const align = (value: number) => Math.ceil(value / 32) * 32;
  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of tensors) {
    offsets.push(offset);
    offset = align(offset + tensor.data.length);
  }
  tensors.forEach((tensor, index) => {
    writer.string(tensor.name);
    writer.u32(tensor.shape.length);
    for (const dimension of tensor.shape) writer.u64(dimension);
    writer.u32(tensor.type);
    writer.u64(offsets[index]!);
  });
  writer.bytes(new Uint8Array(align(writer.length) - writer.length));
  const dataStart = writer.length;
  tensors.forEach((tensor, index) => {
    writer.bytes(new Uint8Array(dataStart + offsets[index]! - writer.length));
    writer.bytes(tensor.data);
  });
  return writer.finish();
}

/** Little-endian bytes of f32 values. */
export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < values.length; index++) view.setFloat32(index * 4, values[index]!, true);
  return bytes;
}

/** Little-endian bytes of binary16 bit patterns. */
export function u16Bytes(values: ArrayLike<number>): Uint8Array {
  const bytes = new Uint8Array(values.length * 2);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < values.length; index++) view.setUint16(index * 2, values[index]!, true);
  return bytes;
}

/** A seeded uniform generator in [-0.5, 0.5). */
export function seededValues(seed: number, count: number): Float32Array {
  let state = seed >>> 0;
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[index] = state / 2 ** 32 - 0.5;
  }
  return values;
}

export type { MetadataValue };

/**
 * A llama2.c tokenizer file (`tokenizer.bin` layout: max token length 16, then per piece a score, its
 * byte length and its UTF-8 bytes); piece `i` scores `-i`.
 */
export function writeLlama2cTokenizer(pieces: readonly string[]): Uint8Array {
  const encoded = pieces.map((piece) => new TextEncoder().encode(piece));
  const bytes = new Uint8Array(4 + encoded.reduce((sum, piece) => sum + 8 + piece.length, 0));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, 16, true);
  let offset = 4;
  encoded.forEach((piece, index) => {
    view.setFloat32(offset, -index, true);
    view.setInt32(offset + 4, piece.length, true);
    bytes.set(piece, offset + 8);
    offset += 8 + piece.length;
  });
  return bytes;
}
