import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NotFoundError, UnsupportedError } from '@deft/core';
import { type RealVocabularyName, realVocabulary, TOKENIZER_CORPUS } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../errors/model-format-error.js';
import { loadTokenizerJson, tokenizerFromJson } from './tokenizer-json.js';

describe('tokenizer.json', () => {
  for (const name of ['llama3', 'qwen3'] as RealVocabularyName[]) {
    it(`${name}: the same ids as the Hugging Face tokenizer, BOS and EOS from the files`, async () => {
      const vocabulary = await realVocabulary(name);
      const tokenizer = tokenizerFromJson(vocabulary.tokenizerJson, vocabulary.tokenizerConfig);
      expect(tokenizer.vocabSize).toBe(vocabulary.vocabSize);
      // NFD input: Qwen's normalizer composes it, as the reference does.
      for (const text of [...TOKENIZER_CORPUS, 'Cafe\u0301 na\u0308ive']) {
        expect(tokenizer.encode(text, { bos: false }), JSON.stringify(text)).toEqual(
          vocabulary.reference.encode(text, { add_special_tokens: false }),
        );
      }
      expect(tokenizer.encode('Hi')).toEqual(vocabulary.reference.encode('Hi'));
      expect(tokenizer.piece(tokenizer.eosId)).toBe(name === 'llama3' ? '<|end_of_text|>' : '<|im_end|>');
    });
  }

  it('reads files, the config beside them optional', async () => {
    const vocabulary = await realVocabulary('llama3');
    const directory = mkdtempSync(path.join(tmpdir(), 'deft-tokenizer-json-'));
    const file = path.join(directory, 'tokenizer.json');
    writeFileSync(file, JSON.stringify(vocabulary.tokenizerJson));
    const alone = await loadTokenizerJson(file);
    expect(alone.encode('Hi')).toEqual(vocabulary.reference.encode('Hi'));
    expect([alone.bosId, alone.eosId]).toEqual([128000, 128001]);
    // Meta's own file adds BOS through its post-processor.
    const withTemplate = tokenizerFromJson({
      ...(vocabulary.tokenizerJson as object),
      post_processor: {
        type: 'TemplateProcessing',
        single: [
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
        ],
      },
    });
    expect(withTemplate.encode('Hi')).toEqual([128000, 13347]);
    writeFileSync(path.join(directory, 'tokenizer_config.json'), '{ not json');
    await expect(loadTokenizerJson(file)).rejects.toSatisfy(ModelFormatError.isInstance);
    await expect(loadTokenizerJson(path.join(directory, 'missing', 'tokenizer.json'))).rejects.toSatisfy(
      NotFoundError.isInstance,
    );
  });

  it('refuses other tokenizers by the field that says so', async () => {
    const vocabulary = await realVocabulary('qwen3');
    const json = vocabulary.tokenizerJson as { model: object; pre_tokenizer: object };
    const refused: [unknown, RegExp][] = [
      [{ ...json, model: { ...json.model, type: 'Unigram' } }, /model\.type = "Unigram"/],
      [{ ...json, model: { ...json.model, byte_fallback: true } }, /model\.byte_fallback/],
      [{ ...json, pre_tokenizer: { type: 'Whitespace' } }, /pre_tokenizer = "Whitespace"/],
      [
        {
          ...json,
          pre_tokenizer: {
            type: 'Sequence',
            pretokenizers: [{ type: 'Split', pattern: { Regex: '\\w+' } }, { type: 'ByteLevel' }],
          },
        },
        /pre_tokenizer\.pattern/,
      ],
    ];
    for (const [input, message] of refused) {
      let error: unknown;
      try {
        tokenizerFromJson(input);
      } catch (caught) {
        error = caught;
      }
      expect(UnsupportedError.isInstance(error), String(error)).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    expect(() => tokenizerFromJson('{')).toThrow(ModelFormatError);
    expect(() => tokenizerFromJson({ model: { type: 'BPE' } })).toThrow(UnsupportedError);
  });
});
