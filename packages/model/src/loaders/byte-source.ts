import { InvalidArgumentError, NotFoundError } from '@deft/core';
import { ModelFormatError } from '../errors/model-format-error.js';

/** Random access to the bytes of a model file (a local file or an in-memory buffer). */
export interface ByteSource {
  /** The file's path or a caller-given name, for messages. */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `offset`.
   * @throws ModelFormatError when the range runs past the end (a truncated file).
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the file handle (idempotent). */
  close(): Promise<void>;
}

function truncated(name: string, offset: number, length: number, size: number): ModelFormatError {
  return new ModelFormatError(
    `${name} is truncated: needs bytes ${offset}..${offset + length} but has ${size}; download or export the file again`,
    { argument: name, expected: `at least ${offset + length} bytes`, actual: size },
  );
}

/**
 * A byte source over a buffer already in memory (browsers, tests, `fetch`ed files).
 * @example
 * ```ts
 * const source = bytesSource(new Uint8Array(await response.arrayBuffer()), 'model.gguf');
 * ```
 */
export function bytesSource(bytes: Uint8Array, name = 'buffer'): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      if (offset < 0 || offset + length > bytes.byteLength)
        throw truncated(name, offset, length, bytes.byteLength);
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
}

/** What a file is for, in messages: `"model file"` or `"tokenizer file"`. */
export type FileRole = 'model file' | 'tokenizer file';

/** Throws `NotFoundError` for a missing path and `InvalidArgumentError` for a directory; rethrows anything else. */
function rethrowFileError(error: unknown, path: string, role: FileRole): never {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    throw new NotFoundError(
      `${role} ${path} does not exist; check the path (relative paths resolve from ${process.cwd()})`,
      {
        argument: 'path',
        expected: 'an existing file',
        actual: path,
        cause: error,
      },
    );
  }
  if (code === 'EISDIR') throw isDirectory(path, role, error);
  throw error;
}

function isDirectory(path: string, role: FileRole, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(`${path} is a directory, expected a ${role}`, {
    argument: 'path',
    expected: `a ${role}`,
    actual: path,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Opens a local file for random access (Node only; `node:fs` is loaded on first use so bundles for
 * browsers stay clean).
 *
 * @param role What the file is, in error messages (default `"model file"`).
 * @throws NotFoundError when the file does not exist; InvalidArgumentError when the path is a directory.
 * @example
 * ```ts
 * const source = await openFileSource('models/stories260K.gguf');
 * try { ... } finally { await source.close(); }
 * ```
 */
export async function openFileSource(path: string, role: FileRole = 'model file'): Promise<ByteSource> {
  const { open } = await import('node:fs/promises');
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    rethrowFileError(error, path, role);
  }
  const stats = await handle.stat();
  if (stats.isDirectory()) {
    await handle.close();
    throw isDirectory(path, role);
  }
  const size = stats.size;
  let closed = false;
  return {
    name: path,
    size,
    async read(offset, length) {
      if (offset < 0 || offset + length > size) throw truncated(path, offset, length, size);
      const buffer = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buffer, done, length - done, offset + done);
        if (bytesRead === 0) throw truncated(path, offset, length, offset + done);
        done += bytesRead;
      }
      return buffer;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/**
 * Reads a whole local file (Node only).
 * @param role What the file is, in error messages (default `"model file"`).
 * @throws NotFoundError when the file does not exist; InvalidArgumentError when the path is a directory.
 * @example
 * ```ts
 * const bytes = await readFileBytes('tok512.bin');
 * ```
 */
export async function readFileBytes(path: string, role: FileRole = 'model file'): Promise<Uint8Array> {
  const { readFile } = await import('node:fs/promises');
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    rethrowFileError(error, path, role);
  }
}
