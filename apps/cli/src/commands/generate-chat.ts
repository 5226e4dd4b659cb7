import { readFile } from 'node:fs/promises';
import type { ChatMessage } from '@deft/model';
import { UsageError } from '../errors/usage-error.js';

/** What `--chat`, `--system`, `--messages` and `--prompt` ask for. */
export interface ChatRequest {
  /** The conversation to render with the model's chat template. */
  readonly messages: readonly ChatMessage[];
}

function messagesFromJson(value: unknown, path: string): ChatMessage[] {
  const list = Array.isArray(value) ? value : (value as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(list) || list.length === 0) {
    throw new UsageError(
      `--messages ${path} must hold a JSON array of { "role", "content" } (or { "messages": [...] }) with at least one message`,
      { argument: '--messages', expected: '[{ "role": "user", "content": "..." }]', actual: path },
    );
  }
  return list.map((message: unknown, index) => {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || role.length === 0 || typeof content !== 'string') {
      throw new UsageError(
        `--messages ${path}: message ${index} must be { "role": string, "content": string }, got ${JSON.stringify(message)}`,
        { argument: '--messages', expected: '{ role, content }', actual: message },
      );
    }
    return { role, content };
  });
}

/**
 * The conversation of a `--chat` run: the messages of `--messages FILE` (a JSON array of `{ role,
 * content }`), then `--system TEXT` first if given, then `--prompt TEXT` as the last user message.
 * Returns `undefined` without `--chat`.
 *
 * @throws {UsageError} for `--system` or `--messages` without `--chat`, a chat with no message, or a
 *   messages file that is missing or not such an array.
 */
export async function chatRequest(options: {
  readonly chat: boolean;
  readonly system: string | undefined;
  readonly messagesPath: string | undefined;
  readonly prompt: string | undefined;
}): Promise<ChatRequest | undefined> {
  const { chat, system, messagesPath, prompt } = options;
  if (!chat) {
    for (const [name, value] of [
      ['system', system],
      ['messages', messagesPath],
    ] as const) {
      if (value !== undefined) {
        throw new UsageError(`--${name} applies to chat generation; add --chat`, {
          argument: `--${name}`,
          expected: '--chat',
        });
      }
    }
    return undefined;
  }
  const messages: ChatMessage[] = [];
  if (messagesPath !== undefined) {
    let text: string;
    try {
      text = await readFile(messagesPath, 'utf8');
    } catch (error) {
      throw new UsageError(`--messages ${messagesPath} cannot be read: ${(error as Error).message}`, {
        argument: '--messages',
        actual: messagesPath,
      });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new UsageError(`--messages ${messagesPath} is not JSON: ${(error as Error).message}`, {
        argument: '--messages',
        actual: messagesPath,
      });
    }
    messages.push(...messagesFromJson(parsed, messagesPath));
  }
  if (system !== undefined) {
    if (messages[0]?.role === 'system') {
      throw new UsageError(
        `--system and a system message in ${messagesPath} both set the system prompt; give one`,
        {
          argument: '--system',
        },
      );
    }
    messages.unshift({ role: 'system', content: system });
  }
  if (prompt !== undefined) messages.push({ role: 'user', content: prompt });
  if (!messages.some((message) => message.role !== 'system')) {
    throw new UsageError('--chat needs a user message: pass --prompt TEXT or --messages FILE', {
      argument: '--prompt',
    });
  }
  return { messages };
}
