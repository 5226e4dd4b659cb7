import {
  type LlamaCheckpoint,
  parseGgufModel,
  parseLlama2cCheckpoint,
  parseLlama2cTokenizer,
  type Tokenizer,
  tokenizerFromJson,
} from '@deft/model';
import type { FileSource } from './worker-messages.js';

/** The file's name, for messages. */
function sourceName(source: FileSource): string {
  return source.kind === 'file' ? source.file.name : (source.url.split('/').at(-1) ?? source.url);
}

/** Reads a picked file or downloads a URL, whole. @throws Error naming the URL and the HTTP status. */
async function readSource(source: FileSource): Promise<Uint8Array> {
  if (source.kind === 'file') return new Uint8Array(await source.file.arrayBuffer());
  const response = await fetch(source.url);
  if (!response.ok) throw new Error(`${source.url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

const GGUF_MAGIC = [0x47, 0x47, 0x55, 0x46]; // "GGUF"

/**
 * Loads a model (GGUF, told by its magic bytes, else a llama2.c checkpoint) and its tokenizer: the GGUF's
 * own unless a file is given; a llama2.c checkpoint needs one (llama2.c `tokenizer.bin` or a Hugging Face
 * `tokenizer.json`, told by its first byte).
 * @throws Error when a llama2.c checkpoint comes without a tokenizer; the loaders' errors otherwise.
 */
export async function loadModelFiles(
  model: FileSource,
  tokenizerSource: FileSource | undefined,
  status: (text: string) => void,
): Promise<{ checkpoint: LlamaCheckpoint; tokenizer: Tokenizer; name: string }> {
  const name = sourceName(model);
  status(`reading ${name}…`);
  const bytes = await readSource(model);
  const isGguf = GGUF_MAGIC.every((byte, index) => bytes[index] === byte);
  const gguf = isGguf ? await parseGgufModel(bytes, name) : undefined;
  const checkpoint = gguf ?? parseLlama2cCheckpoint(bytes, name);
  let tokenizer = gguf?.tokenizer;
  if (tokenizerSource !== undefined) {
    status(`reading ${sourceName(tokenizerSource)}…`);
    const tokenizerBytes = await readSource(tokenizerSource);
    tokenizer =
      tokenizerBytes[0] === 0x7b // '{': a tokenizer.json
        ? tokenizerFromJson(new TextDecoder().decode(tokenizerBytes))
        : parseLlama2cTokenizer(tokenizerBytes, checkpoint.config.vocabSize, sourceName(tokenizerSource));
  }
  if (tokenizer === undefined) {
    throw new Error(
      `${name} carries no tokenizer: choose its tokenizer file (tokenizer.bin, tok512.bin or tokenizer.json)`,
    );
  }
  return { checkpoint, tokenizer, name };
}
