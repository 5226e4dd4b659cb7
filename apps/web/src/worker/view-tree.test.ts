import { DecodingEngine, type DecodingSession, runStrategy } from '@deft/decoder';
import { hasStories260K, loadStories260K, stories260KSkipReason } from '@deft/testing';
import { describe, expect, it } from 'vitest';
import { STRATEGIES } from '../app/run-settings.js';
import { pagesNeeded, startSearch } from './search.js';
import { ViewTree } from './view-tree.js';
import type { ViewNode } from './worker-messages.js';

if (!hasStories260K) console.warn(`apps/web view tree test skipped: ${stories260KSkipReason}`);

/** The generated tokens on the path from the root down to `node`, as the view draws them. */
function pathTokens(nodes: readonly ViewNode[], node: number, promptLength: number): number[] {
  const path: ViewNode[] = [];
  for (let id = node; id >= 0; id = nodes[id]!.parent) path.unshift(nodes[id]!);
  return path.flatMap((entry) =>
    entry.id === 0
      ? entry.tokens.slice(promptLength)
      : entry.state === 'accepted'
        ? entry.tokens.slice(0, entry.accepted)
        : entry.tokens,
  );
}

describe.skipIf(!hasStories260K)('the view tree of each strategy (stories260K, CPU backend)', async () => {
  const { model, tokenizer } = hasStories260K ? await loadStories260K() : ({} as never);
  const decode = (tokens: readonly number[]) => tokenizer.decode(tokens, { stripLeadingSpace: false });

  for (const strategy of STRATEGIES) {
    it(`${strategy}: every kept sequence ends at a node whose path holds its tokens, in a pool of pagesNeeded() pages`, async () => {
      const settings = {
        prompt: 'Once upon a time',
        strategy,
        width: 3,
        temperature: 1,
        seed: 0,
        maxTokens: 24,
      };
      const promptLength = tokenizer.encode(settings.prompt).length;
      // The worker's pool size, which must hold the run.
      const numPages = pagesNeeded(settings, promptLength, model.config.contextLength, 16);
      const engine = DecodingEngine.create(model, { numPages, pageSize: 16 });
      let view: ViewTree | undefined;
      let session: DecodingSession | undefined;
      const opener = {
        openSession(prompt: ArrayLike<number>) {
          session = engine.openSession(prompt);
          view = new ViewTree(session.tree);
          return session;
        },
      };
      const sequences = await runStrategy(startSearch(opener, tokenizer, settings));
      const kept = view!.markKept(sequences, decode);
      const nodes = view!.snapshot(decode, () => 0);
      view!.detach();
      expect(engine.pool.usedCount).toBe(0);
      engine.dispose();
      expect(kept.map((entry) => entry.tokens)).toEqual(sequences.map((sequence) => sequence.tokens));
      for (const entry of kept) {
        const tokens = pathTokens(nodes, entry.node, session!.promptLength);
        expect(tokens.slice(0, entry.tokens.length)).toEqual(entry.tokens);
      }
      if (strategy === 'beam' || strategy === 'best-of' || strategy === 'tot') {
        expect(nodes.some((node) => node.state === 'pruned')).toBe(true);
      }
      if (strategy === 'speculative') {
        expect(nodes.some((node) => node.state === 'accepted' || node.state === 'rejected')).toBe(true);
      }
    });
  }
});
