import { UnsupportedError } from '@deft/core';
import { type MetadataValue, type RealVocabularyName, realVocabulary, TOKENIZER_CORPUS } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { tokenizerFromGgufMetadata } from './gguf-tokenizer.js';
import { preTokenize } from './pre-tokenizers.js';

function plain(metadata: Record<string, MetadataValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(metadata).map(([key, entry]) => [key, entry.value]));
}

describe('byte-level BPE from GGUF metadata', () => {
  it('splits words as Llama 3 and Qwen 2 do', () => {
    expect(preTokenize('llama-bpe', "Hello world 12345 it's\n\n  x")).toEqual([
      'Hello',
      ' world',
      ' ',
      '123',
      '45',
      ' it',
      "'s",
      '\n\n',
      ' ',
      ' x',
    ]);
    expect(preTokenize('qwen2', 'ab 123')).toEqual(['ab', ' ', '1', '2', '3']);
  });

  for (const name of ['llama3', 'qwen3'] as RealVocabularyName[]) {
    it(`${name}: the same ids as the Hugging Face tokenizer on the corpus, and back to the text`, async () => {
      const vocabulary = await realVocabulary(name);
      const tokenizer = tokenizerFromGgufMetadata(plain(vocabulary.metadata), `${name}.gguf`)!;
      expect(tokenizer.model).toBe('bpe');
      expect(tokenizer.vocabSize).toBe(vocabulary.vocabSize);
      for (const text of TOKENIZER_CORPUS) {
        const ids = tokenizer.encode(text, { bos: false });
        expect(ids, JSON.stringify(text)).toEqual(
          vocabulary.reference.encode(text, { add_special_tokens: false }),
        );
        expect(tokenizer.decode(ids)).toBe(text);
      }
    });
  }

  it('llama3: BOS as the file says, control tokens only when asked, end-of-turn ids', async () => {
    const vocabulary = await realVocabulary('llama3');
    const tokenizer = tokenizerFromGgufMetadata(plain(vocabulary.metadata))!;
    expect(tokenizer.encode('Hi')).toEqual([128000, 13347]);
    const chat = '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>';
    const special = tokenizer.encode(chat, { bos: false, special: true });
    expect(special).toEqual(vocabulary.reference.encode(chat, { add_special_tokens: false }));
    expect(special[0]).toBe(128006);
    expect(special.at(-1)).toBe(128009);
    // Without `special`, the text of a control token is text.
    expect(tokenizer.encode(chat, { bos: false })).not.toContain(128009);
    expect(tokenizer.decode(special)).toBe('user\n\nHi');
    expect([...tokenizer.endOfGenerationIds].sort()).toEqual([128001, 128009]);
  });

  it('qwen3: no BOS, <|im_end|> ends a turn, user-defined tokens matched whole and decoded as text', async () => {
    const vocabulary = await realVocabulary('qwen3');
    const tokenizer = tokenizerFromGgufMetadata(plain(vocabulary.metadata))!;
    expect(tokenizer.encode('Hi')[0]).not.toBe(tokenizer.bosId);
    expect(tokenizer.endOfGenerationIds).toEqual(expect.arrayContaining([151645, 151643]));
    const text = '<think>\nhmm\n</think>\n\nyes';
    const ids = tokenizer.encode(text, { bos: false });
    expect(ids).toEqual(vocabulary.reference.encode(text, { add_special_tokens: false }));
    expect(ids[0]).toBe(151667);
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it('refuses another pre-tokenizer by name', async () => {
    const vocabulary = await realVocabulary('qwen3');
    const metadata = { ...plain(vocabulary.metadata), 'tokenizer.ggml.pre': 'deepseek-coder' };
    let error: unknown;
    try {
      tokenizerFromGgufMetadata(metadata, 'x.gguf');
    } catch (caught) {
      error = caught;
    }
    expect(UnsupportedError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/tokenizer\.ggml\.pre = "deepseek-coder"/);
  });
});
