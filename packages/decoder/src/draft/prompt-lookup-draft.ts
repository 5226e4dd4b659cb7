import { assertInteger } from '@deft/core/validate';
import { buildDraftTrie, type DraftNode } from './draft-tree.js';
import type { Drafter } from './drafter.js';

/** Options of {@link promptLookupDraft}. */
export interface PromptLookupOptions {
  /** Longest suffix n-gram looked up (default 3). */
  readonly maxNgram?: number;
  /** Shortest n-gram tried when longer ones do not occur (default 1). */
  readonly minNgram?: number;
  /** Draft tokens proposed after each match (default 6). */
  readonly draftLength?: number;
  /** Distinct continuations (tree branches) kept (default 4). */
  readonly maxBranches?: number;
  /** Draft tokens in the whole tree (default 24). */
  readonly maxDraftTokens?: number;
}

/**
 * A draft model without a model: prompt lookup / n-gram matching. The last `n` tokens of the context are
 * searched for earlier in the context (longest `n` first, most recent match first); the tokens that
 * followed each match are the proposed continuations, merged into a token tree.
 *
 * @param context every token so far (prompt and generated, the newest last)
 * @returns the draft trie (empty when nothing matches)
 * @example
 * ```ts
 * promptLookupDraft([1, 2, 3, 9, 1, 2], { maxNgram: 2 }); // [3 → 9 → 1 → 2]
 * ```
 */
export function promptLookupDraft(
  context: readonly number[],
  options: PromptLookupOptions = {},
): DraftNode[] {
  const maxNgram = assertInteger('maxNgram', options.maxNgram ?? 3, 1);
  const minNgram = assertInteger('minNgram', options.minNgram ?? 1, 1);
  const draftLength = assertInteger('draftLength', options.draftLength ?? 6, 1);
  const maxBranches = assertInteger('maxBranches', options.maxBranches ?? 4, 1);
  const maxDraftTokens = assertInteger('maxDraftTokens', options.maxDraftTokens ?? 24, 1);
  const continuations: number[][] = [];
  const seen = new Set<string>();
  const end = context.length;
  for (let n = Math.min(maxNgram, end - 1); n >= minNgram && continuations.length < maxBranches; n--) {
    for (let start = end - n - 1; start >= 0 && continuations.length < maxBranches; start--) {
      let matches = true;
      for (let offset = 0; offset < n; offset++) {
        if (context[start + offset] !== context[end - n + offset]) {
          matches = false;
          break;
        }
      }
      if (!matches) continue;
      const continuation = context.slice(start + n, Math.min(start + n + draftLength, end));
      const key = continuation.join(',');
      if (continuation.length === 0 || seen.has(key)) continue;
      seen.add(key);
      continuations.push(continuation);
    }
  }
  return buildDraftTrie(continuations, maxDraftTokens);
}

/**
 * {@link promptLookupDraft} as a {@link Drafter}: no model, no state, instant.
 *
 * @throws InvalidArgumentError for bad options (checked here, before any run).
 * @example
 * ```ts
 * const result = await runStrategy(speculativeDecode(engine, { prompt, maxTokens: 200, draft: promptLookupDrafter({ maxBranches: 2 }) }));
 * ```
 */
export function promptLookupDrafter(options: PromptLookupOptions = {}): Drafter {
  promptLookupDraft([], options);
  return { draft: async (context) => promptLookupDraft(context, options) };
}
