import { describe, expect, it } from 'vitest';
import { buildDraftTrie, draftTokenCount } from './draft-tree.js';
import { promptLookupDraft } from './prompt-lookup-draft.js';

describe('drafts', () => {
  it('merges continuations into a trie within a token budget', () => {
    const trie = buildDraftTrie([[5, 6, 7], [5, 8], [9]], 16);
    expect(trie).toEqual([
      {
        token: 5,
        children: [
          { token: 6, children: [{ token: 7, children: [] }] },
          { token: 8, children: [] },
        ],
      },
      { token: 9, children: [] },
    ]);
    expect(draftTokenCount(trie)).toBe(5);
    expect(draftTokenCount(buildDraftTrie([[5, 6, 7], [5, 8], [9]], 3))).toBe(3);
  });

  it('looks up the context suffix, longest n-gram and most recent match first', () => {
    const context = [1, 2, 3, 9, 4, 1, 2, 7, 7, 1, 2];
    expect(promptLookupDraft(context, { maxNgram: 2, draftLength: 2, maxBranches: 3 })).toEqual([
      { token: 7, children: [{ token: 7, children: [] }] },
      { token: 3, children: [{ token: 9, children: [] }] },
    ]);
    expect(promptLookupDraft([1, 2, 3], { minNgram: 1 })).toEqual([]);
    expect(draftTokenCount(promptLookupDraft(context, { maxDraftTokens: 3 }))).toBe(3);
  });
});
