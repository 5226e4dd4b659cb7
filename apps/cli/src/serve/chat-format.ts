import type { ChatTemplate } from '@deft/model';

/** One message of a chat request (`developer` messages arrive as `system`). */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

/**
 * Turns a conversation into the prompt the model continues. The model's own template is used where the
 * model file offers one; {@link plainChatFormat} otherwise.
 */
export interface ChatFormat {
  /** Shown at start-up (`plain` for the fallback). */
  readonly name: string;
  /** The prompt's token ids, ending where the assistant's reply starts. */
  encode(messages: readonly ChatMessage[]): number[];
  /** Text that ends the assistant's turn besides the end-of-generation tokens (e.g. the next user turn). */
  readonly stop: readonly string[];
}

/** What the plain template needs of a tokenizer. */
interface PromptEncoder {
  encode(text: string): number[];
}

const ROLE_LABEL: Readonly<Record<ChatMessage['role'], string>> = {
  system: 'System',
  user: 'User',
  assistant: 'Assistant',
};

/**
 * The text of the fallback template: one line per message, `System: …`, `User: …`, `Assistant: …`,
 * then `Assistant:` for the reply.
 * @example
 * ```ts
 * renderPlainChat([{ role: 'user', content: 'Tell me a story.' }]); // 'User: Tell me a story.\nAssistant:'
 * ```
 */
export function renderPlainChat(messages: readonly ChatMessage[]): string {
  const lines = messages.map((message) => `${ROLE_LABEL[message.role]}: ${message.content}`);
  return `${lines.join('\n')}\nAssistant:`;
}

/**
 * The fallback for models without a chat template (stories260K, llama2.c checkpoints):
 * {@link renderPlainChat} encoded with the model's tokenizer (BOS as it adds it), the reply ending at the
 * end-of-generation tokens or at the next `\nUser:`.
 */
export function plainChatFormat(tokenizer: PromptEncoder): ChatFormat {
  return {
    name: 'plain',
    encode: (messages) => tokenizer.encode(renderPlainChat(messages)),
    stop: ['\nUser:'],
  };
}

/**
 * A model's own chat template (GGUF `tokenizer.chat_template`): the conversation rendered by the template
 * and encoded with its special tokens; the turn ends at the tokenizer's end-of-generation tokens.
 * @example
 * ```ts
 * const template = ChatTemplate.fromGgufMetadata(gguf.metadata, gguf.tokenizer!);
 * const format = template === undefined ? plainChatFormat(gguf.tokenizer!) : modelChatFormat(template);
 * ```
 */
export function modelChatFormat(template: ChatTemplate): ChatFormat {
  return {
    name: "the model's (tokenizer.chat_template)",
    encode: (messages) => template.encode(messages),
    stop: [],
  };
}
