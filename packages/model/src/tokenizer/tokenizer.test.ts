import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@deft/core';
import { hasStories260K, type Stories260KGolden, stories260K, stories260KSkipReason } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { loadGgufModel } from '../loaders/gguf-model.js';
import { loadLlama2cTokenizer, parseLlama2cTokenizer } from './llama2c-tokenizer.js';
import { Tokenizer, type TokenKind } from './tokenizer.js';

function tinyTokenizer(): Tokenizer {
  const bytes = Array.from(
    { length: 256 },
    (_, byte) => `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`,
  );
  const words = [' ', 'a', 'b', 'c', 'ab', 'bc', ' ab', 'abc', ' a'];
  const pieces = ['<unk>', '<s>', '</s>', ...bytes, ...words];
  const scores = pieces.map((piece) => ({ ab: -1, bc: -1, ' ab': -2, abc: -3, ' a': -5 })[piece] ?? -10);
  const kinds: TokenKind[] = pieces.map((_, id) =>
    id === 0 ? 'unknown' : id < 3 ? 'control' : id < 259 ? 'byte' : 'normal',
  );
  return new Tokenizer({
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

describe('Tokenizer', () => {
  it('merges the best-scoring pair first, the leftmost on ties', () => {
    const tokenizer = tinyTokenizer();
    const id = (piece: string) =>
      tokenizer.encode('', { bos: false }).length +
      259 +
      [' ', 'a', 'b', 'c', 'ab', 'bc', ' ab', 'abc', ' a'].indexOf(piece);
    // " abc": ab (-1) and bc (-1) tie, ab is leftmost; then " ab" (-2) beats "abc" (-3); c stays.
    expect(tokenizer.encode('abc', { bos: false })).toEqual([id(' ab'), id('c')]);
    expect(tokenizer.encode('bc')).toEqual([1, id(' '), id('bc')]);
    expect(tokenizer.encode('a', { eos: true })).toEqual([1, id(' a'), 2]);
  });

  it('falls back to UTF-8 bytes and decodes them back', () => {
    const tokenizer = tinyTokenizer();
    const text = 'aé😀b';
    const ids = tokenizer.encode(text, { bos: false });
    expect(ids).toContain(3 + 0xc3);
    expect(tokenizer.decode(ids)).toBe(text);
    const stream = tokenizer.createTextStream();
    const pieces = ids.map((token) => stream.push(token));
    expect(pieces.join('') + stream.flush()).toBe(text);
    expect(pieces.some((piece) => piece === '')).toBe(true); // a partial character prints nothing yet
    expect(tokenizer.decode(tokenizer.encode('ab', { bos: false }), { stripLeadingSpace: false })).toBe(
      ' ab',
    );
  });

  it('rejects bad ids and inconsistent vocabularies', () => {
    const tokenizer = tinyTokenizer();
    expect(() => tokenizer.decode([9999])).toThrow(InvalidArgumentError);
    expect(
      () =>
        new Tokenizer({
          pieces: ['a'],
          scores: [],
          kinds: ['normal'],
          bosId: 0,
          eosId: 0,
          unknownId: -1,
          addSpacePrefix: true,
          addBos: false,
        }),
    ).toThrow(InvalidArgumentError);
  });

  it('parses llama2.c tokenizer files and reports truncation', () => {
    const writer: number[] = [];
    const push32 = (value: number, float = false) => {
      const view = new DataView(new ArrayBuffer(4));
      if (float) view.setFloat32(0, value, true);
      else view.setInt32(0, value, true);
      writer.push(...new Uint8Array(view.buffer));
    };
    push32(8);
    for (const [piece, score] of [
      ['<unk>', 0],
      ['<s>', 0],
      ['</s>', 0],
      [' hi', -1],
    ] as const) {
      push32(score, true);
      const bytes = new TextEncoder().encode(piece);
      push32(bytes.length);
      writer.push(...bytes);
    }
    const bytes = Uint8Array.from(writer);
    const tokenizer = parseLlama2cTokenizer(bytes);
    expect(tokenizer.vocabSize).toBe(4);
    expect(tokenizer.decode([1, 3])).toBe('hi');
    expect(() => parseLlama2cTokenizer(bytes.subarray(0, bytes.length - 2))).toThrow(/truncated/);
    expect(() => parseLlama2cTokenizer(bytes, 5)).toThrow(/truncated at piece 4/);
  });

  describe.skipIf(!hasStories260K)('stories260K vocabulary', () => {
    if (!hasStories260K) console.warn(`skipped: ${stories260KSkipReason}`);
    const golden = hasStories260K
      ? (JSON.parse(readFileSync(stories260K.golden, 'utf8')) as Stories260KGolden)
      : undefined;

    it('encodes the golden prompt and decodes the golden text', async () => {
      const tokenizer = await loadLlama2cTokenizer(stories260K.tokenizer, 512);
      expect(tokenizer.encode(golden!.prompt)).toEqual(golden!.promptIdsWithBos);
      const text = tokenizer.decode([...golden!.promptIdsWithBos, ...golden!.greedyNext30]);
      expect(golden!.greedyTextStartsWith.startsWith(text)).toBe(true);
      for (const [id, , piece] of golden!.firstStepTop5) expect(tokenizer.piece(id)).toBe(piece);
    });

    it('agrees with the GGUF metadata vocabulary', async () => {
      const fromFile = await loadLlama2cTokenizer(stories260K.tokenizer);
      const fromGguf = (await loadGgufModel(stories260K.gguf)).tokenizer!;
      for (const text of [
        'Once upon a time',
        'Héllo wörld! 😀\n  two  spaces',
        '',
        'The end.',
        'A\tB\u2581C',
      ]) {
        expect(fromGguf.encode(text)).toEqual(fromFile.encode(text));
        expect(fromFile.decode(fromFile.encode(text))).toBe(text);
      }
    });
  });
});
