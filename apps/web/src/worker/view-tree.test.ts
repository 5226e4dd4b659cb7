import { DecodingEngine, runStrategy } from '@deft/decoder';
import { hasStories260K, loadStories260K, stories260KSkipReason } from '@deft/testing';
import { describe, expect, it, vi } from 'vitest';
import { STRATEGIES } from '../app/run-settings.js';
import { pagesNeeded, startSearch } from './search.js';
import { type ViewedSession, viewedOpener } from './viewed-opener.js';
import type { ViewNode } from './worker-messages.js';

if (!hasStories260K) console.warn(`apps/web view tree test skipped: ${stories260KSkipReason}`);

/**
 * `field` of the generated tokens on the path from the root down to `node`, as the view draws them
 * (the tokens, or the log-probabilities the view holds for them).
 */
function pathValues(
  nodes: readonly ViewNode[],
  node: number,
  promptLength: number,
  field: 'tokens' | 'logProbabilities',
): number[] {
  const path: ViewNode[] = [];
  for (let id = node; id >= 0; id = nodes[id]!.parent) path.unshift(nodes[id]!);
  return path.flatMap((entry) =>
    entry.id === 0
      ? entry[field].slice(promptLength)
      : entry.state === 'accepted'
        ? entry[field].slice(0, entry.accepted)
        : entry[field],
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
      let opened: ViewedSession | undefined;
      const opener = viewedOpener(engine, (session) => {
        opened = session;
      });
      const sequences = await runStrategy(startSearch(opener, tokenizer, settings));
      const { session, view } = opened!;
      const kept = view.markKept(sequences, decode);
      const nodes = view.snapshot(decode, () => 0);
      view.detach();
      expect(engine.pool.usedCount).toBe(0);
      engine.dispose();
      expect(kept.map((entry) => entry.tokens)).toEqual(sequences.map((sequence) => sequence.tokens));
      for (const [index, entry] of kept.entries()) {
        const tokens = pathValues(nodes, entry.node, session.promptLength, 'tokens');
        expect(tokens.slice(0, entry.tokens.length)).toEqual(entry.tokens);
        // The passes' rows give the same log-probabilities as the strategy's own.
        const logProbabilities = pathValues(nodes, entry.node, session.promptLength, 'logProbabilities');
        const expected = sequences[index]!.logProbabilities;
        expect(logProbabilities.slice(0, expected.length).map((value) => value.toFixed(4))).toEqual(
          expected.map((value) => value.toFixed(4)),
        );
      }
      // Strategies that choose each token from the pass just run have every log-probability (tot expands a
      // thought from an older pass's row, speculative decoding appends drafts before their pass).
      const known = nodes.flatMap((node) => (node.id === 0 ? [] : node.logProbabilities));
      if (strategy === 'greedy' || strategy === 'beam' || strategy === 'best-of') {
        expect(known.every((value) => Number.isFinite(value))).toBe(true);
      }
      if (strategy === 'beam' || strategy === 'best-of' || strategy === 'tot') {
        expect(nodes.some((node) => node.state === 'pruned')).toBe(true);
      }
      if (strategy === 'speculative') {
        expect(nodes.some((node) => node.state === 'accepted' || node.state === 'rejected')).toBe(true);
      }
    });
  }
  it('beam search at width 4 over 120 tokens never holds more pages than pagesNeeded()', async () => {
    const settings = {
      prompt: 'Once upon a time',
      strategy: 'beam' as const,
      width: 4,
      temperature: 1,
      seed: 0,
      maxTokens: 120,
    };
    const promptLength = tokenizer.encode(settings.prompt).length;
    const numPages = pagesNeeded(settings, promptLength, model.config.contextLength, 16);
    // A larger pool, so that the peak is measured rather than cut short by the pool running out.
    const engine = DecodingEngine.create(model, { numPages: numPages * 4, pageSize: 16 });
    let peak = 0;
    const allocate = engine.pool.allocate.bind(engine.pool);
    vi.spyOn(engine.pool, 'allocate').mockImplementation((count: number) => {
      const pages = allocate(count);
      peak = Math.max(peak, engine.pool.usedCount);
      return pages;
    });
    const sequences = await runStrategy(startSearch(engine, tokenizer, settings));
    expect(engine.pool.usedCount).toBe(0);
    engine.dispose();
    expect(sequences.length).toBeGreaterThan(0);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(numPages);
  });
});
