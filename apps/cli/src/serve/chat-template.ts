/** One message of a chat request (`developer` messages arrive as `system`). */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

/**
 * Turns a conversation into the prompt text the model continues. The model's own template is used where
 * the model file offers one; {@link plainChatTemplate} otherwise.
 */
export interface ChatTemplate {
  /** Shown by `GET /v1/models` and at start-up (`plain` for the fallback). */
  readonly name: string;
  /** The prompt text, ending where the assistant's reply starts. */
  render(messages: readonly ChatMessage[]): string;
  /** Text that ends the assistant's turn besides the end-of-sequence token (e.g. the next user turn). */
  readonly stop: readonly string[];
}

const ROLE_LABEL: Readonly<Record<ChatMessage['role'], string>> = {
  system: 'System',
  user: 'User',
  assistant: 'Assistant',
};

/**
 * The fallback for models without a chat template (stories260K, llama2.c checkpoints): one line per
 * message, `System: …`, `User: …`, `Assistant: …`, then `Assistant:` for the reply, which ends at the
 * next `\nUser:`.
 *
 * @example
 * ```ts
 * plainChatTemplate.render([{ role: 'user', content: 'Tell me a story.' }]); // 'User: Tell me a story.\nAssistant:'
 * ```
 */
export const plainChatTemplate: ChatTemplate = {
  name: 'plain',
  render(messages) {
    const lines = messages.map((message) => `${ROLE_LABEL[message.role]}: ${message.content}`);
    return `${lines.join('\n')}\nAssistant:`;
  },
  stop: ['\nUser:'],
};
