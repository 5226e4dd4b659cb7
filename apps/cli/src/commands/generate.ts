import { CapacityError, DeftError, type ModelBackend, PLAN_STRATEGIES, type PlanStrategy } from '@deft/core';
import {
  type AcceptanceStats,
  beamSearch,
  bestOfN,
  type DecodeEvent,
  type DecodeStats,
  DecodingEngine,
  fewShot,
  type GeneratedSequence,
  generate,
  runStrategy,
  speculativeDecode,
  treeOfThoughts,
} from '@deft/decoder';
import {
  ChatTemplate,
  LlamaModel,
  type LoadProgress,
  loadGgufModel,
  loadLlama2cCheckpoint,
  type Tokenizer,
} from '@deft/model';
import type { TokenTree } from '@deft/tree';
import type { BackendName, OpenedBackend } from '../backends/open-backend.js';
import { openModelBackend } from '../backends/open-model-backend.js';
import { type CliIo, processIo } from '../cli/cli-io.js';
import {
  choiceOption,
  integerOption,
  parseCommandLine,
  requiredStringOption,
  stringOption,
} from '../cli/parse-command-line.js';
import { UsageError } from '../errors/usage-error.js';
import { formatBytes } from '../format/format-number.js';
import { loadTokenizerFile } from '../model-files/load-tokenizer-file.js';
import { modelMemoryBudget } from '../model-files/model-memory.js';
import { modelFileOptions, resolveCliPath } from '../model-files/model-paths.js';
import { chatRequest } from './generate-chat.js';
import { describeAcceptance } from './speculative-summary.js';

const STRATEGIES = ['greedy', 'sample', 'beam', 'best-of', 'speculative', 'tot', 'few-shot'] as const;
type Strategy = (typeof STRATEGIES)[number];
const BACKENDS = ['cpu', 'webgpu', 'cuda', 'auto'] as const satisfies readonly (BackendName | 'auto')[];

const HELP = `Usage: deft generate --model FILE [--tokenizer FILE] --prompt TEXT [--strategy S] [options]
       deft generate --model FILE.gguf --chat [--system TEXT] [--messages FILE] [--prompt TEXT] [options]

Generates text with a Llama-family model (GGUF: Llama 2/3/3.1/3.2, Mistral, Qwen 2/2.5, Qwen 3; or a
llama2.c checkpoint with its tokenizer file) and a tree search over the paged tree KV cache with DeFT attention. Greedy decoding and sampling stream the
text; the other strategies print their sequences with scores. At the end it prints the token tree and
the statistics: forward passes, queries, and the KV bytes read under the tree plan against the
sequence baseline (each query reading its whole path). A summary line on stderr gives the generated
tokens, tokens per second and the time to the first token (in --json: "timing").

Every strategy reports the same score: score = the sum of the generated tokens' log-probabilities
(natural log), with meanLogProb = score / tokens beside it. rankScore is the value the strategy itself
ranked by (beam: sum / length^penalty; tot: its thought scores; the others: the sum), in --json only.

Options:
  -m, --model FILE        model file: .gguf (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K
                          tensors) or a llama2.c checkpoint (.bin); a progress bar shows the load on a
                          terminal
  -t, --tokenizer FILE    a Hugging Face tokenizer.json (byte-level BPE) or a llama2.c tokenizer
                          (tokenizer.bin, tok512.bin); a GGUF carries its own
  -p, --prompt TEXT       the prompt (BOS added as the model file says); with --chat, the last user message
  --chat                  render the conversation with the GGUF's chat template (tokenizer.chat_template)
                          and stop at the end of the assistant's turn
  --system TEXT           --chat: the system message
  --messages FILE         --chat: a JSON array of { "role": "system" | "user" | "assistant", "content": "..." }
                          (--system goes first, --prompt last)
  -s, --strategy S        ${STRATEGIES.join(', ')} (default greedy)
  -n, --max-tokens N      most tokens generated per sequence (per thought for tot; default 64); generation
                          also stops where prompt + tokens fill the model's context length
  --width N               beams (beam), samples (best-of), thoughts per expansion (tot) (default 4)
  --temperature X         sampling temperature (default 0 for greedy/beam, 1 for sample/best-of/tot)
  --top-k N               keep the N most likely tokens, N >= 1 (default: all)
  --top-p X               nucleus sampling threshold in (0, 1] (default 1)
  --seed N                sampling seed (default 0)
  --length-penalty X      beam: score = sum / length^X (default 1)
  --early-stopping        beam: stop once --width hypotheses finished
  --draft-length N        speculative: draft tokens per prompt-lookup match (default 6)
  --draft-branches N      speculative: distinct draft continuations per step (default 4)
  --keep N                tot: open thoughts kept after each expansion (default 2)
  --depth N               tot: thoughts per answer (default 3)
  --branch TEXT           few-shot: a suffix branching off the prompt (repeat for more branches)
  --no-stop               do not stop at the end-of-sequence or end-of-turn tokens
  --backend B             ${BACKENDS.join(', ')} (default cpu); cpu, webgpu and cuda all implement the
                          model ops; auto picks CUDA, then a hardware WebGPU adapter, then the CPU
  --plan-strategy S       ${PLAN_STRATEGIES.join(', ')} (default deft-flatten)
  --page-size N           tokens per KV page (default 16)
  --pages N               KV pages in the pool (default 1024)
  --kv-dtype D            f32 or f16 (default f32)
  --json                  print one JSON object instead of text
  -q, --quiet             no progress line and no tree
  -h, --help              show this help

An option named for some strategies (--width, --temperature, --top-k, --top-p, --seed, the beam,
speculative, tot and few-shot options) is refused with the others, which would ignore it. When the KV
pool runs out, the error suggests a --pages value that fits the run.

tot scores each thought by its mean token log-probability (the model's own confidence); thoughts end at
'.' or a newline.

Examples:
  pnpm deft generate -m ../shared/models/stories260K/stories260K.gguf -p "Once upon a time"
  pnpm deft generate -m stories260K.bin -t tok512.bin -p "Lily saw" -s beam --width 4 -n 30
  pnpm deft generate -m stories260K.gguf -p "Once upon a time" -s speculative -n 200 --json
  pnpm deft generate -m stories260K.gguf -p "Once upon a time" -s few-shot --branch " Tom" --branch " a cat"
  pnpm deft generate -m Llama-3.2-1B-Instruct-Q4_K_M.gguf --chat --system "Be brief." -p "Name a color."
`;

/** A number option, or `undefined` when absent. @throws {UsageError} when it is not a number in range. */
function numberOption(
  values: Record<string, unknown>,
  name: string,
  check: (value: number) => boolean,
  expected: string,
): number | undefined {
  const text = stringOption(values as never, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || !check(value)) {
    throw new UsageError(`--${name} must be ${expected}, got '${text}'`, {
      argument: `--${name}`,
      expected,
      actual: text,
    });
  }
  return value;
}

/** The strategies that use each strategy-specific option; any other strategy refuses it. */
const OPTION_STRATEGIES: Readonly<Record<string, readonly Strategy[]>> = {
  width: ['beam', 'best-of', 'tot'],
  temperature: ['sample', 'best-of', 'tot', 'few-shot'],
  'top-k': ['sample', 'best-of', 'tot', 'few-shot'],
  'top-p': ['sample', 'best-of', 'tot', 'few-shot'],
  seed: ['sample', 'best-of', 'tot', 'few-shot'],
  'length-penalty': ['beam'],
  'early-stopping': ['beam'],
  'draft-length': ['speculative'],
  'draft-branches': ['speculative'],
  keep: ['tot'],
  depth: ['tot'],
  branch: ['few-shot'],
};

/** @throws {UsageError} naming the strategies that take an option given to one that would ignore it. */
function refuseIgnoredOptions(values: Record<string, unknown>, strategy: Strategy): void {
  for (const [name, strategies] of Object.entries(OPTION_STRATEGIES)) {
    if (values[name] === undefined || strategies.includes(strategy)) continue;
    throw new UsageError(
      `--${name} does nothing with --strategy ${strategy}; it applies to ${strategies.join(', ')} (see 'deft generate --help')`,
      { argument: `--${name}`, expected: `--strategy ${strategies.join(' | ')}`, actual: strategy },
    );
  }
}

/**
 * The KV pages a run can hold at most without any sharing: every live sequence owning its whole path
 * (prompt + generated tokens, capped by the context length) plus one partly filled page. A `--pages` value
 * this large always fits; sharing makes the real need smaller.
 */
function pagesUpperBound(
  strategy: Strategy,
  inputs: {
    promptLength: number;
    maxTokens: number;
    contextLength: number;
    pageSize: number;
    width: number;
    keep: number;
    depth: number;
    draftLength: number;
    draftBranches: number;
    branchLengths: readonly number[];
  },
): number {
  const pages = (generated: number) =>
    Math.ceil(Math.min(inputs.promptLength + generated, inputs.contextLength) / inputs.pageSize) + 1;
  switch (strategy) {
    case 'greedy':
    case 'sample':
      return pages(inputs.maxTokens);
    case 'speculative':
      return pages(inputs.maxTokens + inputs.draftLength) * (inputs.draftBranches + 1);
    case 'beam':
      // Up to `width` live beams and `width` finished hypotheses hold their paths.
      return pages(inputs.maxTokens) * inputs.width * 2;
    case 'best-of':
      return pages(inputs.maxTokens) * inputs.width;
    case 'tot':
      return pages(inputs.maxTokens * inputs.depth) * inputs.width * inputs.keep;
    case 'few-shot':
      return inputs.branchLengths.reduce((sum, length) => sum + pages(length + inputs.maxTokens), 0);
  }
}

/** A load progress bar on a terminal (`loading model.gguf [#####     ] 52% 1.2 GB of 2.3 GB, 150/291 tensors`). */
function loadProgressBar(io: CliIo, enabled: boolean, name: string) {
  const active = enabled && io.stderrIsTerminal;
  let lastDrawn = -1;
  return {
    update(progress: LoadProgress): void {
      if (!active) return;
      const fraction = progress.totalBytes === 0 ? 1 : progress.bytes / progress.totalBytes;
      const percent = Math.floor(fraction * 100);
      if (percent === lastDrawn && progress.tensors !== progress.totalTensors) return;
      lastDrawn = percent;
      const width = 24;
      const filled = Math.round(fraction * width);
      io.stderr(
        `\r\x1b[2Kloading ${name} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${percent}% ` +
          `${formatBytes(progress.bytes)} of ${formatBytes(progress.totalBytes)}, ${progress.tensors}/${progress.totalTensors} tensors`,
      );
    },
    clear(): void {
      if (active) io.stderr('\r\x1b[2K');
    },
  };
}

async function loadModelFiles(
  modelPath: string,
  tokenizerPath: string | undefined,
  backend: ModelBackend,
  options: { readonly chat: boolean; readonly io: CliIo; readonly progress: boolean },
) {
  if (modelPath.toLowerCase().endsWith('.gguf')) {
    const bar = loadProgressBar(options.io, options.progress, modelPath.split('/').at(-1) ?? modelPath);
    let gguf: Awaited<ReturnType<typeof loadGgufModel>>;
    try {
      gguf = await loadGgufModel(modelPath, {
        onProgress: (progress) => bar.update(progress),
        hostMemoryBudgetBytes: modelMemoryBudget(),
      });
    } finally {
      bar.clear();
    }
    const tokenizer =
      tokenizerPath === undefined
        ? gguf.tokenizer
        : await loadTokenizerFile(tokenizerPath, gguf.config.vocabSize);
    if (tokenizer === undefined) {
      throw new UsageError(`${modelPath} carries no vocabulary; pass --tokenizer FILE`, {
        argument: '--tokenizer',
      });
    }
    let chatTemplate: ChatTemplate | undefined;
    if (options.chat) {
      chatTemplate = ChatTemplate.fromGgufMetadata(gguf.metadata, tokenizer);
      if (chatTemplate === undefined) {
        throw new UsageError(
          `${modelPath} has no chat template (tokenizer.chat_template); drop --chat and pass the prompt as text`,
          { argument: '--chat' },
        );
      }
    }
    return { model: LlamaModel.create(backend, gguf), tokenizer, chatTemplate };
  }
  if (options.chat) {
    throw new UsageError('--chat needs a GGUF model: the chat template comes from the file', {
      argument: '--chat',
      actual: modelPath,
    });
  }
  if (tokenizerPath === undefined) {
    throw new UsageError(
      'a llama2.c checkpoint needs its tokenizer: pass --tokenizer FILE (e.g. tok512.bin)',
      { argument: '--tokenizer' },
    );
  }
  const checkpoint = await loadLlama2cCheckpoint(modelPath, { hostMemoryBudgetBytes: modelMemoryBudget() });
  const tokenizer = await loadTokenizerFile(tokenizerPath, checkpoint.config.vocabSize);
  return { model: LlamaModel.create(backend, checkpoint), tokenizer, chatTemplate: undefined };
}

/** A status line on a terminal, redrawn after every forward pass; silent elsewhere. */
function progressLine(io: CliIo, enabled: boolean) {
  const active = enabled && io.stderrIsTerminal;
  return {
    update(event: DecodeEvent): void {
      if (!active) return;
      const { stats } = event;
      io.stderr(
        `\r\x1b[2K[${event.strategy}] step ${event.step}: ${stats.treeNodes} nodes, ${stats.treeTokens} tokens, ` +
          `${stats.leaves} leaves, ${stats.pagesUsed} pages (${stats.pagesShared} shared), ${stats.queries} queries`,
      );
    },
    clear(): void {
      if (active) io.stderr('\r\x1b[2K');
    },
  };
}

interface Outcome {
  readonly sequences: readonly GeneratedSequence[];
  readonly stats: DecodeStats;
  readonly tree: TokenTree;
  readonly extra: Record<string, unknown>;
}

/** The one score every strategy reports, named in the output. */
const SCORE_CONVENTION =
  "sum of the generated tokens' log-probabilities (natural log); mean = score / tokens";

/** `score` (sum of log-probabilities) and `meanLogProb` of a sequence, whatever the strategy ranked by. */
function scoreOf(sequence: GeneratedSequence): { score: number; meanLogProb: number } {
  let score = 0;
  for (const value of sequence.logProbabilities) score += value;
  const count = sequence.logProbabilities.length;
  return { score, meanLogProb: count === 0 ? 0 : score / count };
}

/** Generated tokens, wall time, tokens per second and time to the first token of a run. */
interface Timing {
  readonly generatedTokens: number;
  readonly totalMilliseconds: number;
  readonly tokensPerSecond: number;
  /** From the start of decoding (prompt pass included) to the first generated token; `null` when none was. */
  readonly firstTokenMilliseconds: number | null;
}

function describeTiming(
  sequences: readonly GeneratedSequence[],
  totalMilliseconds: number,
  firstTokenMilliseconds: number | undefined,
): Timing {
  const generatedTokens = sequences.reduce((sum, sequence) => sum + sequence.tokens.length, 0);
  return {
    generatedTokens,
    totalMilliseconds,
    tokensPerSecond: totalMilliseconds > 0 ? (generatedTokens * 1000) / totalMilliseconds : 0,
    firstTokenMilliseconds: firstTokenMilliseconds ?? null,
  };
}

function timingLine(timing: Timing): string {
  const first =
    timing.firstTokenMilliseconds === null
      ? 'no token generated'
      : `first token after ${timing.firstTokenMilliseconds.toFixed(0)} ms`;
  return (
    `deft generate: ${timing.generatedTokens} tokens in ${(timing.totalMilliseconds / 1000).toFixed(2)} s, ` +
    `${timing.tokensPerSecond.toFixed(1)} tokens/s, ${first}`
  );
}

/** The strategy's own counters as one readable line (speculative acceptance, tot search size), if any. */
function describeExtra(extra: Record<string, unknown>): string | undefined {
  const acceptance = extra.acceptance as AcceptanceStats | undefined;
  if (acceptance !== undefined) return describeAcceptance(acceptance);
  if (extra.expansions !== undefined) {
    return `search: ${String(extra.expansions)} expansions, ${String(extra.thoughts)} thoughts, ${String(extra.answers)} answers`;
  }
  return undefined;
}

function statsLines(stats: DecodeStats): string {
  return [
    `forward passes ${stats.forwardPasses}, queries ${stats.queries}, peak ${stats.peakTreeNodes} tree nodes / ${stats.peakPagesUsed} KV pages`,
    `KV read: tree plan ${formatBytes(stats.kvBytesRead)}, sequence baseline ${formatBytes(stats.sequenceKvBytes)} ` +
      `(${stats.kvReadReduction.toFixed(2)}x less)`,
    `time: planning ${stats.planMilliseconds.toFixed(1)} ms, forward ${stats.forwardMilliseconds.toFixed(1)} ms`,
  ].join('\n');
}

/**
 * `deft generate`: loads a model and runs one decoding strategy over the tree KV cache; resolves to the
 * exit code (0 success; usage errors throw {@link UsageError}, which the `deft` dispatcher turns into
 * exit code 2).
 *
 * @param argv Arguments after `deft generate`.
 * @param io Where to write (the process's streams by default).
 * @example
 * ```ts
 * process.exitCode = await runGenerate(['--model', 'stories260K.gguf', '--prompt', 'Once upon a time']);
 * ```
 */
export async function runGenerate(argv: string[], io: CliIo = processIo()): Promise<number> {
  const { help, values } = parseCommandLine('generate', argv, {
    model: { type: 'string', short: 'm' },
    tokenizer: { type: 'string', short: 't' },
    prompt: { type: 'string', short: 'p' },
    chat: { type: 'boolean' },
    system: { type: 'string' },
    messages: { type: 'string' },
    strategy: { type: 'string', short: 's' },
    'max-tokens': { type: 'string', short: 'n' },
    width: { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    'length-penalty': { type: 'string' },
    'early-stopping': { type: 'boolean' },
    'draft-length': { type: 'string' },
    'draft-branches': { type: 'string' },
    keep: { type: 'string' },
    depth: { type: 'string' },
    branch: { type: 'string', multiple: true },
    'no-stop': { type: 'boolean' },
    backend: { type: 'string' },
    'plan-strategy': { type: 'string' },
    'page-size': { type: 'string' },
    pages: { type: 'string' },
    'kv-dtype': { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const { modelPath, tokenizerPath } = modelFileOptions(values, io, 'generate');
  const chat = values.chat === true;
  const messagesOption = stringOption(values, 'messages');
  const promptOption = stringOption(values, 'prompt');
  const request = await chatRequest({
    chat,
    system: stringOption(values, 'system'),
    messagesPath: messagesOption === undefined ? undefined : resolveCliPath(io, messagesOption),
    prompt: promptOption,
  });
  // Plain generation needs --prompt; a chat may take its messages from a file instead.
  const promptText =
    request === undefined ? requiredStringOption(values, 'prompt', 'generate') : (promptOption ?? '');
  const strategy: Strategy = choiceOption(values, 'strategy', STRATEGIES) ?? 'greedy';
  refuseIgnoredOptions(values, strategy);
  const maxTokens = integerOption(values, 'max-tokens', 1) ?? 64;
  const width = integerOption(values, 'width', 1) ?? 4;
  const sampled = strategy === 'sample' || strategy === 'best-of' || strategy === 'tot';
  const temperature =
    numberOption(values, 'temperature', (value) => value >= 0, 'a number >= 0') ?? (sampled ? 1 : 0);
  // The decoder reads top-k 0 as "all tokens"; on the command line that is the default, so N >= 1.
  const topK = integerOption(values, 'top-k', 1) ?? 0;
  const topP = numberOption(values, 'top-p', (value) => value > 0 && value <= 1, 'in (0, 1]') ?? 1;
  const seed = integerOption(values, 'seed', 0) ?? 0;
  const lengthPenalty = numberOption(values, 'length-penalty', () => true, 'a number') ?? 1;
  const draftLength = integerOption(values, 'draft-length', 1) ?? 6;
  const draftBranches = integerOption(values, 'draft-branches', 1) ?? 4;
  const keep = integerOption(values, 'keep', 1) ?? 2;
  const depth = integerOption(values, 'depth', 1) ?? 3;
  const branchTexts = (values.branch as string[] | undefined) ?? [];
  if (strategy === 'few-shot' && branchTexts.length === 0) {
    throw new UsageError(
      "--strategy few-shot needs at least one --branch TEXT (see 'deft generate --help')",
      { argument: '--branch' },
    );
  }
  const backendName: BackendName | 'auto' = choiceOption(values, 'backend', BACKENDS) ?? 'cpu';
  const planStrategy: PlanStrategy = choiceOption(values, 'plan-strategy', PLAN_STRATEGIES) ?? 'deft-flatten';
  const pageSize = integerOption(values, 'page-size', 1) ?? 16;
  const numPages = integerOption(values, 'pages', 1) ?? 1024;
  const kvDtype = choiceOption(values, 'kv-dtype', ['f32', 'f16'] as const) ?? 'f32';
  const json = values.json === true;
  const quiet = values.quiet === true || json;

  let opened: OpenedBackend | undefined;
  let model: LlamaModel | undefined;
  let engine: DecodingEngine | undefined;
  let pagesNeeded: (() => number) | undefined;
  try {
    // A backend that cannot run here (no addon, no device) fails like any other run: one line, exit 1.
    const resolved = await openModelBackend(backendName);
    opened = resolved.opened;
    const backend: ModelBackend = resolved.backend;
    const loaded = await loadModelFiles(modelPath, tokenizerPath, backend, { chat, io, progress: !quiet });
    model = loaded.model;
    const tokenizer: Tokenizer = loaded.tokenizer;
    const chatTemplate = loaded.chatTemplate;
    engine = DecodingEngine.create(model, {
      numPages,
      pageSize,
      kvDtype,
      planner: { strategy: planStrategy },
    });
    const renderedChat =
      request !== undefined && chatTemplate !== undefined ? chatTemplate.render(request.messages) : undefined;
    const prompt =
      request !== undefined && chatTemplate !== undefined
        ? chatTemplate.encode(request.messages)
        : tokenizer.encode(promptText);
    const branches = branchTexts.map((text) => tokenizer.encode(text, { bos: false }));
    const contextLimit = model.config.contextLength;
    pagesNeeded = () =>
      pagesUpperBound(strategy, {
        promptLength: prompt.length,
        maxTokens,
        contextLength: contextLimit,
        pageSize,
        width,
        keep,
        depth,
        draftLength,
        draftBranches,
        branchLengths: branches.map((branch) => branch.length),
      });
    // EOS, the end-of-turn token and the control tokens chat models end a turn with.
    const stopTokens = values['no-stop'] === true ? [] : [...tokenizer.endOfGenerationIds];
    const sampling = { temperature, topK, topP, seed };
    const progress = progressLine(io, !quiet);
    const streaming = !json && (strategy === 'greedy' || strategy === 'sample');
    const textStream = tokenizer.createTextStream();
    if (streaming) {
      // A chat prints the reply only; plain generation prints the prompt it continues.
      if (renderedChat === undefined) io.stdout(promptText);
      for (const token of prompt) textStream.push(token);
    }
    const onEvent = (event: DecodeEvent) => {
      if (streaming)
        for (const entry of event.tokens) for (const token of entry.tokens) io.stdout(textStream.push(token));
      else progress.update(event);
    };
    const common = { prompt, maxTokens, stopTokens };
    const started = performance.now();
    let firstTokenMilliseconds: number | undefined;
    const onEventTimed = (event: DecodeEvent) => {
      if (firstTokenMilliseconds === undefined && event.tokens.some((entry) => entry.tokens.length > 0))
        firstTokenMilliseconds = performance.now() - started;
      onEvent(event);
    };
    const outcome = await runOne(strategy, engine, {
      common,
      sampling,
      width,
      lengthPenalty,
      earlyStopping: values['early-stopping'] === true,
      draftLength,
      draftBranches,
      keep,
      depth,
      branches,
      tokenizer,
      onEvent: onEventTimed,
    });
    const timing = describeTiming(outcome.sequences, performance.now() - started, firstTokenMilliseconds);
    progress.clear();
    if (streaming) io.stdout(`${textStream.flush()}\n`);
    const contextLength = model.config.contextLength;
    const stoppedAtContext = outcome.sequences.filter(
      (sequence) => sequence.finishReason === 'context',
    ).length;
    if (stoppedAtContext > 0) {
      io.stderr(
        `deft generate: stopped at the model's context length of ${contextLength} tokens (prompt ${prompt.length} + ` +
          `generated); ${stoppedAtContext === 1 ? 'the sequence' : `${stoppedAtContext} sequences`} could not reach -n ${maxTokens}\n`,
      );
    }
    const described = outcome.sequences.map((sequence) => ({
      text: tokenizer.decode(sequence.tokens, { stripLeadingSpace: false }),
      tokens: sequence.tokens,
      logProbabilities: sequence.logProbabilities,
      ...scoreOf(sequence),
      rankScore: sequence.score,
      finishReason: sequence.finishReason,
    }));
    if (json) {
      const { steps, ...totals } = outcome.stats;
      io.stdout(
        `${JSON.stringify(
          {
            model: modelPath,
            backend: backend.name,
            strategy,
            contextLength,
            prompt:
              request === undefined
                ? { text: promptText, tokens: prompt }
                : { messages: request.messages, text: renderedChat, tokens: prompt },
            scoreConvention: SCORE_CONVENTION,
            sequences: described,
            ...outcome.extra,
            timing,
            stats: { ...totals, steps },
            tree: outcome.tree.toJSON(),
          },
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    if (!streaming) {
      io.stdout(`score: ${SCORE_CONVENTION}\n\n`);
      described.forEach((sequence, index) => {
        io.stdout(
          `[${index + 1}] score ${sequence.score.toFixed(4)}, mean ${sequence.meanLogProb.toFixed(4)}/token ` +
            `(${sequence.finishReason}, ${sequence.tokens.length} tokens)\n`,
        );
        const shownPrompt = renderedChat === undefined ? promptText : '';
        io.stdout(`${shownPrompt}${strategy === 'few-shot' ? branchTexts[index] : ''}${sequence.text}\n\n`);
      });
    }
    const extraLine = describeExtra(outcome.extra);
    if (extraLine !== undefined) io.stdout(`${extraLine}\n`);
    if (!quiet)
      io.stdout(`\ntoken tree at the end (pages released):\n${outcome.tree.dump({ maxTokens: 12 })}\n`);
    io.stdout(`${statsLines(outcome.stats)}\n`);
    io.stderr(`${timingLine(timing)}\n`);
    return 0;
  } catch (error) {
    if (CapacityError.isInstance(error) && /KV page/.test(error.message)) {
      const bound = pagesNeeded?.() ?? 0;
      const suggestion = bound > numPages ? bound : numPages * 2;
      io.stderr(
        `deft generate: ${error.message}; the pool has --pages ${numPages} of ${pageSize} tokens: ` +
          `run with --pages ${suggestion}${bound > numPages ? ' (enough for this run without any sharing)' : ''}\n`,
      );
      return 1;
    }
    if (DeftError.isInstance(error) && !UsageError.isInstance(error)) {
      io.stderr(`deft generate: ${(error as DeftError).message}\n`);
      return 1;
    }
    throw error;
  } finally {
    engine?.dispose();
    model?.dispose();
    opened?.dispose();
  }
}

interface RunInputs {
  readonly common: { prompt: number[]; maxTokens: number; stopTokens: number[] };
  readonly sampling: { temperature: number; topK: number; topP: number; seed: number };
  readonly width: number;
  readonly lengthPenalty: number;
  readonly earlyStopping: boolean;
  readonly draftLength: number;
  readonly draftBranches: number;
  readonly keep: number;
  readonly depth: number;
  readonly branches: number[][];
  readonly tokenizer: Tokenizer;
  readonly onEvent: (event: DecodeEvent) => void;
}

async function runOne(strategy: Strategy, engine: DecodingEngine, inputs: RunInputs): Promise<Outcome> {
  const { common, sampling, onEvent } = inputs;
  switch (strategy) {
    case 'greedy':
    case 'sample': {
      const result = await runStrategy(
        generate(engine, {
          ...common,
          sampling: strategy === 'greedy' ? { ...sampling, temperature: 0 } : sampling,
        }),
        onEvent,
      );
      return { sequences: [result.sequence], stats: result.stats, tree: result.tree, extra: {} };
    }
    case 'beam': {
      const result = await runStrategy(
        beamSearch(engine, {
          ...common,
          width: inputs.width,
          lengthPenalty: inputs.lengthPenalty,
          earlyStopping: inputs.earlyStopping,
        }),
        onEvent,
      );
      return { sequences: result.sequences, stats: result.stats, tree: result.tree, extra: {} };
    }
    case 'best-of': {
      const result = await runStrategy(bestOfN(engine, { ...common, n: inputs.width, sampling }), onEvent);
      return {
        sequences: result.sequences,
        stats: result.stats,
        tree: result.tree,
        extra: { branchIndices: result.branchIndices },
      };
    }
    case 'speculative': {
      const result = await runStrategy(
        speculativeDecode(engine, {
          ...common,
          draft: { draftLength: inputs.draftLength, maxBranches: inputs.draftBranches },
        }),
        onEvent,
      );
      return {
        sequences: [result.sequence],
        stats: result.stats,
        tree: result.tree,
        extra: { acceptance: result.acceptance },
      };
    }
    case 'tot': {
      const ends = ['.', '\n'].map((text) => inputs.tokenizer.encode(text, { bos: false }).at(-1)!);
      const result = await runStrategy(
        treeOfThoughts(engine, {
          ...common,
          branching: inputs.width,
          keep: inputs.keep,
          maxDepth: inputs.depth,
          thoughtEnd: ends,
          sampling,
          score: (thought) => thought.logProbability / Math.max(1, thought.tokens.length),
        }),
        onEvent,
      );
      return {
        sequences: [
          result.best,
          ...result.answers.slice(1).map((answer) => ({
            tokens: answer.pathTokens,
            logProbabilities: answer.pathLogProbabilities,
            score: answer.score,
            finishReason: 'length' as const,
          })),
        ],
        stats: result.stats,
        tree: result.tree,
        extra: { expansions: result.expansions, thoughts: result.thoughts, answers: result.answers.length },
      };
    }
    case 'few-shot': {
      const result = await runStrategy(
        fewShot(engine, { ...common, branches: inputs.branches, sampling }),
        onEvent,
      );
      return { sequences: result.sequences, stats: result.stats, tree: result.tree, extra: {} };
    }
  }
}
