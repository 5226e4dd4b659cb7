import { InvalidArgumentError } from '@deft/core';
import { type MetadataValue, realVocabulary } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../errors/model-format-error.js';
import { tokenizerFromGgufMetadata } from '../tokenizer/gguf-tokenizer.js';
import { ChatTemplate } from './chat-template.js';

function plain(metadata: Record<string, MetadataValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(metadata).map(([key, entry]) => [key, entry.value]));
}

const CONVERSATION = [
  { role: 'system', content: 'You are brief.' },
  { role: 'user', content: 'Hi! 你好 😀' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Count to 3.' },
];

describe('chat templates', () => {
  for (const name of ['llama3', 'qwen3'] as const) {
    it(`${name}: renders the file's template as the Hugging Face tokenizer does, special tokens encoded`, async () => {
      const vocabulary = await realVocabulary(name);
      const metadata = plain(vocabulary.metadata);
      const tokenizer = tokenizerFromGgufMetadata(metadata)!;
      const template = ChatTemplate.fromGgufMetadata(metadata, tokenizer)!;
      const text = template.render(CONVERSATION);
      // The Hugging Face port's own Jinja cannot parse Qwen 3's template, so its expected text is written out.
      const expected =
        name === 'llama3'
          ? vocabulary.reference.apply_chat_template(CONVERSATION, {
              tokenize: false,
              add_generation_prompt: true,
            })
          : '<|im_start|>system\nYou are brief.<|im_end|>\n<|im_start|>user\nHi! 你好 😀<|im_end|>\n' +
            '<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nCount to 3.<|im_end|>\n<|im_start|>assistant\n';
      expect(text).toBe(expected);
      const ids = template.encode(CONVERSATION);
      expect(ids).toEqual(vocabulary.reference.encode(text, { add_special_tokens: false }));
      // One BOS at most, and the conversation ends on the assistant's header.
      expect(ids.filter((id) => id === tokenizer.bosId).length).toBe(name === 'llama3' ? 1 : 0);
      const endOfTurn = name === 'llama3' ? '<|eot_id|>' : '<|im_end|>';
      const endOfTurnId = tokenizer.encode(endOfTurn, { bos: false, special: true });
      expect(endOfTurnId).toHaveLength(1);
      expect(tokenizer.endOfGenerationIds).toContain(endOfTurnId[0]);
      expect(tokenizer.decode(ids)).toContain('Count to 3.');
    });
  }

  it('passes extra variables (Qwen 3 enable_thinking)', async () => {
    const vocabulary = await realVocabulary('qwen3');
    const metadata = plain(vocabulary.metadata);
    const template = ChatTemplate.fromGgufMetadata(metadata, tokenizerFromGgufMetadata(metadata)!)!;
    const messages = [{ role: 'user', content: 'Hi' }];
    expect(template.render(messages)).not.toContain('<think>');
    expect(template.render(messages, { variables: { enable_thinking: false } })).toContain(
      '<think>\n\n</think>',
    );
  });

  it('refuses a template that does not parse, and a conversation the template rejects', async () => {
    const vocabulary = await realVocabulary('llama3');
    const tokenizer = tokenizerFromGgufMetadata(plain(vocabulary.metadata))!;
    expect(() => new ChatTemplate('{% for x in %}', tokenizer)).toThrow(ModelFormatError);
    const strict = new ChatTemplate(
      "{% if messages[0].role != 'user' %}{{ raise_exception('the first message must be the user') }}{% endif %}{{ messages[0].content }}",
      tokenizer,
    );
    expect(() => strict.render([{ role: 'system', content: 'x' }])).toThrow(
      /the first message must be the user/,
    );
    expect(() => strict.render([])).toThrow(InvalidArgumentError);
    expect(() => strict.render([{ role: 'user' } as never])).toThrow(InvalidArgumentError);
    expect(ChatTemplate.fromGgufMetadata({}, tokenizer)).toBeUndefined();
  });
});
