import { InvalidArgumentError } from '@deft/core';
import { ByteLevelBpe, byteLevelPieceBytes } from './byte-level-bpe.js';
import { isPreTokenizerName, type PreTokenizerName } from './pre-tokenizers.js';

/** What a vocabulary entry is (the `token_type` of GGUF / SentencePiece). */
export type TokenKind = 'normal' | 'unknown' | 'control' | 'user-defined' | 'unused' | 'byte';

/**
 * A vocabulary: SentencePiece-style (`model` `spm`, the default) or byte-level BPE (`bpe`, GPT-2 / Llama 3 /
 * Qwen). SentencePiece pieces use a plain space `' '` where SentencePiece files use `▁` (the loaders
 * convert), and byte tokens are pieces `<0xXX>` of kind `byte`. Byte-level BPE pieces are strings of
 * GPT-2's byte characters (`Ġ` for a space), merged by `merges` rank.
 */
export interface TokenizerVocabulary {
  /** `spm` (default): merge by piece score with byte fallback; `bpe`: byte-level BPE by merge rank. */
  readonly model?: 'spm' | 'bpe';
  /** `bpe`: the merges, `"left right"`, highest priority first. */
  readonly merges?: readonly string[];
  /** `bpe`: the pre-tokenizer that splits text into words (`tokenizer.ggml.pre`; `default` when omitted). */
  readonly preTokenizer?: PreTokenizerName;
  /** End-of-turn token of chat models (`<|eot_id|>`, `<|im_end|>`), `-1` or omitted if none. */
  readonly eotId?: number;
  /** Unicode normalization applied to text before encoding (`NFC`, as Qwen's `tokenizer.json` asks); none when omitted. */
  readonly normalization?: 'NFC';
  /** `[vocabSize]` piece text of each id. */
  readonly pieces: readonly string[];
  /** `[vocabSize]` merge priority of each piece (higher merges first). */
  readonly scores: ArrayLike<number>;
  /** `[vocabSize]` kind of each piece. */
  readonly kinds: readonly TokenKind[];
  readonly bosId: number;
  readonly eosId: number;
  /** Id used for text with no piece and no byte fallback, `-1` if none. */
  readonly unknownId: number;
  /** Prepend a space to non-empty text before encoding (SentencePiece's dummy prefix). */
  readonly addSpacePrefix: boolean;
  /** Whether `encode` adds BOS unless told otherwise. */
  readonly addBos: boolean;
}

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend BOS; the vocabulary's `addBos` when omitted. */
  readonly bos?: boolean;
  /**
   * Read the text of control tokens in `text` as those tokens (`<|eot_id|>`, `<|im_start|>`: what a
   * rendered chat template holds); false when omitted, so user text cannot inject them. User-defined
   * tokens are always matched whole, as llama.cpp does.
   */
  readonly special?: boolean;
  /** Append EOS; false when omitted. */
  readonly eos?: boolean;
}

/** Options of {@link Tokenizer.decode} and {@link Tokenizer.createTextStream}. */
export interface DecodeOptions {
  /**
   * Drop the space prefix `encode` adds from the first piece (default true). Pass false when decoding a
   * continuation of text decoded earlier, so its leading space stays.
   */
  readonly stripLeadingSpace?: boolean;
}

/** Incremental detokenization for streaming: feed ids, get the text they complete. */
export interface TokenTextStream {
  /** Text completed by `token` (may be empty while a multi-byte character is still partial). */
  push(token: number): string;
  /** Whatever partial character is left, as replacement characters. */
  flush(): string;
}

interface Symbol {
  text: string;
  previous: number;
  next: number;
}

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly score: number;
  readonly length: number;
}

/** Binary max-heap of bigrams: higher score first, then the leftmost. */
class BigramQueue {
  private readonly items: Bigram[] = [];

  get size(): number {
    return this.items.length;
  }

  private before(a: Bigram, b: Bigram): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(item: Bigram): void {
    const items = this.items;
    items.push(item);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(items[index]!, items[parent]!)) break;
      [items[index], items[parent]] = [items[parent]!, items[index]!];
      index = parent;
    }
  }

  pop(): Bigram {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let best = index;
        if (left < items.length && this.before(items[left]!, items[best]!)) best = left;
        if (right < items.length && this.before(items[right]!, items[best]!)) best = right;
        if (best === index) break;
        [items[index], items[best]] = [items[best]!, items[index]!];
        index = best;
      }
    }
    return top;
  }
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
/** Control pieces that end a chat model's turn, whatever the file names its EOS. */
const END_OF_TURN_PIECES = new Set([
  '<|eot_id|>',
  '<|eom_id|>',
  '<|im_end|>',
  '<|endoftext|>',
  '<end_of_turn>',
  '<|end|>',
  '</s>',
]);
const encoder = new TextEncoder();

/**
 * A SentencePiece-style BPE tokenizer with byte fallback, as used by Llama 1/2, TinyLlama and the
 * llama2.c models: text gets a space prefix, is split into characters, and adjacent symbols are merged
 * greedily by the highest piece score (leftmost first on ties), as llama.cpp's SPM tokenizer does;
 * characters left without a piece become byte tokens.
 *
 * @example
 * ```ts
 * const tokenizer = await loadLlama2cTokenizer('tok512.bin');
 * tokenizer.encode('Once upon a time'); // [1, 403, 407, 261, 378]
 * tokenizer.decode([1, 403, 407, 261, 378]); // 'Once upon a time'
 * ```
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** `spm` (SentencePiece) or `bpe` (byte-level BPE). */
  readonly model: 'spm' | 'bpe';
  /**
   * Ids that end generation: EOS, the end-of-turn token, and the control tokens chat models end a turn
   * with (`<|eot_id|>`, `<|eom_id|>`, `<|im_end|>`, `<|endoftext|>`, `<end_of_turn>`, `<|end|>`) when present.
   */
  readonly endOfGenerationIds: readonly number[];
  private readonly vocabulary: TokenizerVocabulary;
  private readonly bpe: ByteLevelBpe | undefined;
  /** Control and user-defined tokens by text, longest first, for matching them whole in text. */
  private readonly specialTokens: {
    readonly text: string;
    readonly id: number;
    readonly control: boolean;
  }[] = [];
  private readonly specialPatterns = new Map<boolean, RegExp | undefined>();
  /** Piece text to id, for pieces that text can produce (normal, user-defined, unused). */
  private readonly pieceIds = new Map<string, number>();
  /** `[256]` byte-token id of each byte, `-1` if absent. */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** `[vocabSize]` UTF-8 bytes each id decodes to (empty for control tokens). */
  private readonly pieceBytes: Uint8Array[];

  /**
   * @throws InvalidArgumentError when the arrays' lengths disagree or special ids are out of range.
   */
  constructor(vocabulary: TokenizerVocabulary) {
    const size = vocabulary.pieces.length;
    if (vocabulary.scores.length !== size || vocabulary.kinds.length !== size || size === 0) {
      throw new InvalidArgumentError(
        'tokenizer pieces, scores and kinds must be non-empty and of one length',
        {
          argument: 'vocabulary',
          expected: size,
          actual: [vocabulary.scores.length, vocabulary.kinds.length],
        },
      );
    }
    for (const [name, id] of [
      ['bosId', vocabulary.bosId],
      ['eosId', vocabulary.eosId],
    ] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= size) {
        throw new InvalidArgumentError(`${name} ${id} is out of range [0, ${size})`, {
          argument: `vocabulary.${name}`,
          expected: `0..${size - 1}`,
          actual: id,
        });
      }
    }
    const model = vocabulary.model ?? 'spm';
    if (model !== 'spm' && model !== 'bpe') {
      throw new InvalidArgumentError(`tokenizer model ${String(model)} is unknown`, {
        argument: 'vocabulary.model',
        expected: "'spm' | 'bpe'",
        actual: model,
      });
    }
    if (
      model === 'bpe' &&
      vocabulary.preTokenizer !== undefined &&
      !isPreTokenizerName(vocabulary.preTokenizer)
    ) {
      throw new InvalidArgumentError(`pre-tokenizer ${String(vocabulary.preTokenizer)} is unknown`, {
        argument: 'vocabulary.preTokenizer',
        expected: 'a PreTokenizerName',
        actual: vocabulary.preTokenizer,
      });
    }
    const eotId = vocabulary.eotId ?? -1;
    if (!Number.isInteger(eotId) || eotId < -1 || eotId >= size) {
      throw new InvalidArgumentError(`eotId ${eotId} is out of range [-1, ${size})`, {
        argument: 'vocabulary.eotId',
        expected: `-1..${size - 1}`,
        actual: eotId,
      });
    }
    this.vocabulary = vocabulary;
    this.vocabSize = size;
    this.bosId = vocabulary.bosId;
    this.eosId = vocabulary.eosId;
    this.model = model;
    this.pieceBytes = new Array<Uint8Array>(size);
    const endIds = new Set([vocabulary.eosId, ...(eotId >= 0 ? [eotId] : [])]);
    for (let id = 0; id < size; id++) {
      const piece = vocabulary.pieces[id]!;
      const kind = vocabulary.kinds[id]!;
      if (kind === 'control' && END_OF_TURN_PIECES.has(piece)) endIds.add(id);
      if ((kind === 'control' || kind === 'user-defined') && piece.length > 0) {
        this.specialTokens.push({ text: piece, id, control: kind === 'control' });
      }
      if (model === 'bpe') {
        this.pieceBytes[id] = this.bpePieceBytes(piece, kind);
        if (kind === 'normal' || kind === 'unused') {
          if (!this.pieceIds.has(piece)) this.pieceIds.set(piece, id);
        }
        continue;
      }
      const byteMatch = kind === 'byte' ? BYTE_PIECE.exec(piece) : null;
      if (byteMatch !== null) {
        const byte = Number.parseInt(byteMatch[1]!, 16);
        if (this.byteIds[byte] === -1) this.byteIds[byte] = id;
        this.pieceBytes[id] = Uint8Array.of(byte);
      } else if (kind === 'control') {
        this.pieceBytes[id] = new Uint8Array(0);
      } else if (kind === 'unknown') {
        this.pieceBytes[id] = encoder.encode(' \u2047 ');
      } else {
        this.pieceBytes[id] = encoder.encode(piece);
        if (!this.pieceIds.has(piece)) this.pieceIds.set(piece, id);
      }
    }
    this.endOfGenerationIds = [...endIds];
    this.specialTokens.sort((a, b) => b.text.length - a.text.length || a.id - b.id);
    this.bpe =
      model === 'bpe'
        ? new ByteLevelBpe(this.pieceIds, vocabulary.merges ?? [], vocabulary.preTokenizer ?? 'default')
        : undefined;
  }

  /** Bytes a byte-level BPE piece decodes to: control tokens nothing, user-defined ones their text. */
  private bpePieceBytes(piece: string, kind: TokenKind): Uint8Array {
    if (kind === 'control') return new Uint8Array(0);
    if (kind === 'user-defined' || kind === 'unknown') return encoder.encode(piece);
    return byteLevelPieceBytes(piece) ?? encoder.encode(piece);
  }

  /** Whether `encode` adds BOS when not told otherwise (as the file says). */
  get addsBos(): boolean {
    return this.vocabulary.addBos;
  }

  /** The id of the end-of-turn token, `-1` if the vocabulary has none. */
  get eotId(): number {
    return this.vocabulary.eotId ?? -1;
  }

  /** Splits text at control / user-defined token texts: strings to encode and ids taken whole. */
  private partition(text: string, special: boolean): (string | number)[] {
    let pattern = this.specialPatterns.get(special);
    if (!this.specialPatterns.has(special)) {
      const texts = this.specialTokens
        .filter((token) => special || !token.control)
        .map((token) => token.text);
      pattern =
        texts.length === 0
          ? undefined
          : new RegExp(texts.map((value) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu');
      this.specialPatterns.set(special, pattern);
    }
    if (pattern === undefined) return [text];
    const parts: (string | number)[] = [];
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      if (match.index > last) parts.push(text.slice(last, match.index));
      const token = this.specialTokens.find(
        (candidate) => candidate.text === match[0] && (special || !candidate.control),
      );
      parts.push(token!.id);
      last = match.index + match[0].length;
    }
    if (last < text.length) parts.push(text.slice(last));
    return parts;
  }

  /** Text of a piece as stored (spaces as `' '`, byte tokens as `<0xXX>`). */
  piece(id: number): string {
    this.checkId(id, 'id');
    return this.vocabulary.pieces[id]!;
  }

  /** Kind of a piece. */
  kind(id: number): TokenKind {
    this.checkId(id, 'id');
    return this.vocabulary.kinds[id]!;
  }

  /**
   * Encodes text to ids.
   * @example
   * ```ts
   * tokenizer.encode('Hello', { bos: false }); // no BOS
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') {
      throw new InvalidArgumentError('text must be a string', {
        argument: 'text',
        expected: 'string',
        actual: typeof text,
      });
    }
    const ids: number[] = [];
    if (options.bos ?? this.vocabulary.addBos) ids.push(this.bosId);
    const normalized = this.vocabulary.normalization === 'NFC' ? text.normalize('NFC') : text;
    const parts = this.partition(normalized, options.special ?? false);
    parts.forEach((part, index) => {
      if (typeof part === 'number') {
        ids.push(part);
        return;
      }
      if (part.length === 0) return;
      if (this.bpe !== undefined) {
        this.bpe.encode(part, ids);
        return;
      }
      // SentencePiece's dummy prefix goes before the text and, as llama.cpp does, before text that
      // follows a special token.
      const prefixed =
        this.vocabulary.addSpacePrefix && (index === 0 || typeof parts[index - 1] === 'number')
          ? ` ${part}`
          : part;
      this.encodeSymbols(Array.from(prefixed), ids);
    });
    if (options.eos ?? false) ids.push(this.eosId);
    return ids;
  }

  private encodeSymbols(characters: string[], ids: number[]): void {
    const symbols: Symbol[] = characters.map((text, index) => ({
      text,
      previous: index - 1,
      next: index + 1 < characters.length ? index + 1 : -1,
    }));
    const queue = new BigramQueue();
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const text = symbols[left]!.text + symbols[right]!.text;
      const id = this.pieceIds.get(text);
      if (id === undefined) return;
      queue.push({ left, right, score: this.vocabulary.scores[id]!, length: text.length });
    };
    for (let index = 1; index < symbols.length; index++) tryAdd(index - 1, index);
    while (queue.size > 0) {
      const bigram = queue.pop();
      const left = symbols[bigram.left]!;
      const right = symbols[bigram.right]!;
      // Stale entry: one side was merged away or grew since the bigram was queued.
      if (
        left.text.length === 0 ||
        right.text.length === 0 ||
        left.text.length + right.text.length !== bigram.length ||
        left.next !== bigram.right
      )
        continue;
      left.text += right.text;
      right.text = '';
      left.next = right.next;
      if (right.next >= 0) symbols[right.next]!.previous = bigram.left;
      tryAdd(left.previous, bigram.left);
      tryAdd(bigram.left, left.next);
    }
    for (let index = 0; index >= 0 && index < symbols.length; index = symbols[index]!.next) {
      const text = symbols[index]!.text;
      const id = this.pieceIds.get(text);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // SentencePiece escapes spaces as U+2581 before its byte fallback, so a lone space is its 3 bytes.
      for (const byte of encoder.encode(text.replaceAll(' ', '\u2581'))) {
        const byteId = this.byteIds[byte]!;
        if (byteId >= 0) ids.push(byteId);
        else if (this.vocabulary.unknownId >= 0) ids.push(this.vocabulary.unknownId);
      }
    }
  }

  /**
   * Decodes ids to text. Control tokens (BOS, EOS) print nothing; byte tokens are joined into UTF-8;
   * the space prefix added by `encode` is removed from the start unless `stripLeadingSpace` is false.
   * @example
   * ```ts
   * tokenizer.decode(tokenizer.encode('Once upon a time')); // 'Once upon a time'
   * tokenizer.decode(generated, { stripLeadingSpace: false }); // ' there was …'
   * ```
   */
  decode(tokens: ArrayLike<number>, options: DecodeOptions = {}): string {
    const stream = this.createTextStream(options);
    let text = '';
    for (let index = 0; index < tokens.length; index++) text += stream.push(tokens[index]!);
    return text + stream.flush();
  }

  /**
   * A streaming decoder: `push` one id at a time and print what it returns. The result of pushing a
   * whole sequence equals `decode` of it.
   * @example
   * ```ts
   * const stream = tokenizer.createTextStream();
   * for (const token of tokens) process.stdout.write(stream.push(token));
   * ```
   */
  createTextStream(options: DecodeOptions = {}): TokenTextStream {
    const decoder = new TextDecoder('utf-8', { fatal: false });
    let atStart = this.vocabulary.addSpacePrefix && (options.stripLeadingSpace ?? true);
    return {
      push: (token: number): string => {
        this.checkId(token, 'token');
        let bytes = this.pieceBytes[token]!;
        if (bytes.length === 0) return '';
        // SentencePiece drops the dummy space prefix of the first piece.
        if (atStart && bytes[0] === 0x20) bytes = bytes.subarray(1);
        atStart = false;
        return decoder.decode(bytes, { stream: true });
      },
      flush: (): string => decoder.decode(),
    };
  }

  private checkId(id: number, argument: string): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new InvalidArgumentError(`${argument} ${id} is out of range [0, ${this.vocabSize})`, {
        argument,
        expected: `integer in [0, ${this.vocabSize})`,
        actual: id,
      });
    }
  }
}
