import { ModelFormatError } from '../errors/model-format-error.js';
import { readFileBytes } from '../loaders/byte-source.js';
import { tokenizerFromFile } from './file-vocabulary.js';
import type { Tokenizer, TokenKind } from './tokenizer.js';

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * Parses a llama2.c tokenizer file (`tokenizer.bin`, `tok512.bin`): an int32 `max_token_length`, then per
 * piece an f32 score, an int32 byte length and the UTF-8 bytes. Id 0 is `<unk>`, 1 BOS, 2 EOS, pieces
 * `<0xXX>` are byte tokens.
 *
 * @param bytes the whole file
 * @param vocabSize pieces to read; all pieces up to the end of the file when omitted
 * @param name the file name, for messages
 * @throws ModelFormatError for a truncated or malformed file.
 * @example
 * ```ts
 * const tokenizer = parseLlama2cTokenizer(bytes, 512, 'tok512.bin');
 * ```
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize?: number, name = 'tokenizer'): Tokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (message: string, expected: unknown, actual: unknown): never => {
    throw new ModelFormatError(`${name} ${message}; is it a llama2.c tokenizer file?`, {
      argument: name,
      expected,
      actual,
    });
  };
  if (bytes.byteLength < 4) fail('is truncated before its header', 'at least 4 bytes', bytes.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16)
    fail(`has an invalid max_token_length ${maxTokenLength}`, '1..65536', maxTokenLength);
  const decoder = new TextDecoder('utf-8');
  const pieces: string[] = [];
  const scores: number[] = [];
  let offset = 4;
  while (vocabSize === undefined ? offset < bytes.byteLength : pieces.length < vocabSize) {
    if (offset + 8 > bytes.byteLength)
      fail(`is truncated at piece ${pieces.length}`, `${vocabSize ?? 'more'} pieces`, pieces.length);
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    if (length < 0) fail(`has a piece of negative length ${length} at id ${pieces.length}`, '>= 0', length);
    if (offset + 8 + length > bytes.byteLength)
      fail(`is truncated at piece ${pieces.length}`, `${vocabSize ?? 'more'} pieces`, pieces.length);
    pieces.push(decoder.decode(bytes.subarray(offset + 8, offset + 8 + length)));
    scores.push(score);
    offset += 8 + length;
  }
  if (pieces.length < 3) fail('holds fewer than 3 pieces', '>= 3', pieces.length);
  const kinds: TokenKind[] = pieces.map((piece, id) => {
    if (id === 0) return 'unknown';
    if (id === 1 || id === 2) return 'control';
    return BYTE_PIECE.test(piece) ? 'byte' : 'normal';
  });
  // The vocabulary's own checks (ids in range) report a bad file as a bad file.
  return tokenizerFromFile(name, {
    pieces,
    scores,
    kinds,
    bosId: 1,
    eosId: 2,
    unknownId: 0,
    addSpacePrefix: true,
    addBos: true,
  });
}

/**
 * Loads a llama2.c tokenizer file (Node only). See {@link parseLlama2cTokenizer}.
 *
 * @throws NotFoundError for a missing file; InvalidArgumentError for a directory; ModelFormatError for a
 *   malformed file.
 * @example
 * ```ts
 * const tokenizer = await loadLlama2cTokenizer('tok512.bin', checkpoint.config.vocabSize);
 * ```
 */
export async function loadLlama2cTokenizer(path: string, vocabSize?: number): Promise<Tokenizer> {
  return parseLlama2cTokenizer(await readFileBytes(path, 'tokenizer file'), vocabSize, path);
}
