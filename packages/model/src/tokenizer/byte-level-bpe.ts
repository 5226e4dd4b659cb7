import { type PreTokenizerName, preTokenize, preTokenizerIgnoresMerges } from './pre-tokenizers.js';

/**
 * GPT-2's byte-to-character table: each byte as a printable character (bytes that are printable Latin-1
 * stand for themselves, the rest map to U+0100 and up), so a token's piece is a string of these.
 */
function byteCharacters(): string[] {
  const characters = new Array<string>(256);
  let next = 256;
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174;
    characters[byte] = String.fromCodePoint(printable ? byte : next++);
  }
  return characters;
}

const BYTE_CHARACTERS = byteCharacters();
const CHARACTER_BYTES = new Map(BYTE_CHARACTERS.map((character, byte) => [character, byte]));
const encoder = new TextEncoder();

/** The UTF-8 bytes a byte-level piece stands for, or `undefined` if it holds a character outside the table. */
export function byteLevelPieceBytes(piece: string): Uint8Array | undefined {
  const bytes: number[] = [];
  for (const character of piece) {
    const byte = CHARACTER_BYTES.get(character);
    if (byte === undefined) return undefined;
    bytes.push(byte);
  }
  return Uint8Array.from(bytes);
}

/**
 * Byte-level BPE (GPT-2, Llama 3, Qwen): pre-tokenize, map each word's UTF-8 bytes to characters, then
 * merge adjacent symbols by merge rank, lowest first, until no ranked pair is left.
 */
export class ByteLevelBpe {
  private readonly ranks = new Map<string, number>();
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, number[]>();

  /**
   * @param pieceIds piece (byte-level characters) to id
   * @param merges `"left right"` pairs in rank order
   */
  constructor(
    private readonly pieceIds: ReadonlyMap<string, number>,
    merges: readonly string[],
    private readonly preTokenizer: PreTokenizerName,
  ) {
    merges.forEach((merge, rank) => {
      if (!this.ranks.has(merge)) this.ranks.set(merge, rank);
    });
    this.ignoreMerges = preTokenizerIgnoresMerges(preTokenizer);
  }

  /** Appends the ids of `text` (no special tokens in it) to `ids`. */
  encode(text: string, ids: number[]): void {
    for (const word of preTokenize(this.preTokenizer, text)) {
      const cached = this.cache.get(word);
      if (cached !== undefined) {
        for (const id of cached) ids.push(id);
        continue;
      }
      const wordIds = this.encodeWord(word);
      if (this.cache.size < 50_000) this.cache.set(word, wordIds);
      for (const id of wordIds) ids.push(id);
    }
  }

  private encodeWord(word: string): number[] {
    let symbols = Array.from(encoder.encode(word), (byte) => BYTE_CHARACTERS[byte]!);
    if (this.ignoreMerges) {
      const whole = this.pieceIds.get(symbols.join(''));
      if (whole !== undefined) return [whole];
    }
    while (symbols.length > 1) {
      let bestRank = Number.POSITIVE_INFINITY;
      let bestIndex = -1;
      for (let index = 0; index + 1 < symbols.length; index++) {
        const rank = this.ranks.get(`${symbols[index]} ${symbols[index + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          bestIndex = index;
        }
      }
      if (bestIndex < 0) break;
      const left = symbols[bestIndex]!;
      const right = symbols[bestIndex + 1]!;
      // Merge every occurrence of the pair, left to right, as the reference BPE does.
      const merged: string[] = [];
      for (let index = 0; index < symbols.length; index++) {
        if (index + 1 < symbols.length && symbols[index] === left && symbols[index + 1] === right) {
          merged.push(left + right);
          index++;
        } else merged.push(symbols[index]!);
      }
      symbols = merged;
    }
    const ids: number[] = [];
    for (const symbol of symbols) {
      const id = this.pieceIds.get(symbol);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // A symbol without a piece (a vocabulary missing some merge result) falls back to its characters.
      for (const character of symbol) {
        const characterId = this.pieceIds.get(character);
        if (characterId !== undefined) ids.push(characterId);
      }
    }
    return ids;
  }
}
