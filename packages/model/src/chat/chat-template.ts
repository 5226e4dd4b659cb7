import { InvalidArgumentError } from '@deft/core';
import { Template } from '@huggingface/jinja';
import { ModelFormatError } from '../errors/model-format-error.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** One message of a conversation. */
export interface ChatMessage {
  /** `system`, `user` or `assistant` (templates may know others, e.g. `tool`). */
  readonly role: string;
  readonly content: string;
}

/** Options of {@link ChatTemplate.render} and {@link ChatTemplate.encode}. */
export interface ChatRenderOptions {
  /** End with the header of the assistant's turn, so the model writes the reply (default true). */
  readonly addGenerationPrompt?: boolean;
  /** More variables for the template (e.g. Qwen 3's `enable_thinking: false`). */
  readonly variables?: Readonly<Record<string, unknown>>;
}

const ROLE_NAMES = ['system', 'user', 'assistant', 'tool'];

/**
 * A model's chat template (GGUF `tokenizer.chat_template`, a Jinja template as Hugging Face writes them),
 * rendered with `@huggingface/jinja` and encoded with the model's tokenizer, special tokens included.
 *
 * @example
 * ```ts
 * const template = ChatTemplate.fromGgufMetadata(gguf.metadata, gguf.tokenizer!);
 * const prompt = template!.encode([{ role: 'user', content: 'Hi' }]);
 * ```
 */
export class ChatTemplate {
  /** The template's source text. */
  readonly source: string;
  private readonly template: Template;
  private readonly tokenizer: Tokenizer;

  /**
   * @throws ModelFormatError when the template does not parse (naming `tokenizer.chat_template`).
   */
  constructor(source: string, tokenizer: Tokenizer) {
    if (typeof source !== 'string' || source.length === 0) {
      throw new InvalidArgumentError('a chat template must be a non-empty string', {
        argument: 'source',
        expected: 'string',
        actual: typeof source,
      });
    }
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new ModelFormatError(
        `tokenizer.chat_template does not parse as a Jinja template: ${(error as Error).message}`,
        { argument: 'tokenizer.chat_template', expected: 'a Jinja template', cause: error },
      );
    }
    this.source = source;
    this.tokenizer = tokenizer;
  }

  /**
   * The chat template of a GGUF file's metadata, or `undefined` when it has none.
   * @throws ModelFormatError when `tokenizer.chat_template` is not a string or does not parse.
   */
  static fromGgufMetadata(
    metadata: Readonly<Record<string, unknown>>,
    tokenizer: Tokenizer,
  ): ChatTemplate | undefined {
    const source = metadata['tokenizer.chat_template'];
    if (source === undefined) return undefined;
    if (typeof source !== 'string' || source.length === 0) {
      throw new ModelFormatError('tokenizer.chat_template must be a non-empty string', {
        argument: 'tokenizer.chat_template',
        expected: 'string',
        actual: typeof source,
      });
    }
    return new ChatTemplate(source, tokenizer);
  }

  /**
   * Renders a conversation to text (special tokens as their text).
   * @throws InvalidArgumentError for a malformed message list or an error the template raises itself
   *   (e.g. "roles must alternate").
   */
  render(messages: readonly ChatMessage[], options: ChatRenderOptions = {}): string {
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new InvalidArgumentError('messages must be a non-empty array of { role, content }', {
        argument: 'messages',
        expected: 'ChatMessage[]',
        actual: Array.isArray(messages) ? 0 : typeof messages,
      });
    }
    messages.forEach((message, index) => {
      if (
        typeof message !== 'object' ||
        message === null ||
        typeof message.role !== 'string' ||
        message.role.length === 0 ||
        typeof message.content !== 'string'
      ) {
        throw new InvalidArgumentError(`messages[${index}] must be { role: string, content: string }`, {
          argument: `messages[${index}]`,
          expected: `{ role: ${ROLE_NAMES.join(' | ')}, content: string }`,
          actual: message,
        });
      }
    });
    const { tokenizer } = this;
    const special = (id: number) => (id >= 0 && id < tokenizer.vocabSize ? tokenizer.piece(id) : '');
    try {
      return this.template.render({
        ...options.variables,
        messages: messages.map(({ role, content }) => ({ role, content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
        bos_token: special(tokenizer.bosId),
        eos_token: special(tokenizer.eosId),
      });
    } catch (error) {
      throw new InvalidArgumentError(
        `the chat template refused the conversation: ${(error as Error).message}`,
        {
          argument: 'messages',
          expected: 'a conversation the template accepts',
          cause: error,
        },
      );
    }
  }

  /**
   * Renders a conversation and encodes it: control tokens in the rendered text become their ids, and BOS
   * is added only when the tokenizer adds it and the template did not write it already.
   * @example
   * ```ts
   * const ids = template.encode([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }]);
   * ```
   */
  encode(messages: readonly ChatMessage[], options: ChatRenderOptions = {}): number[] {
    const text = this.render(messages, options);
    const ids = this.tokenizer.encode(text, { bos: false, special: true });
    if (this.tokenizer.addsBos && ids[0] !== this.tokenizer.bosId) ids.unshift(this.tokenizer.bosId);
    return ids;
  }
}
