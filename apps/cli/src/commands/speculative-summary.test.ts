import { describe, expect, it } from 'vitest';
import { describeAcceptance } from './speculative-summary.js';

describe('describeAcceptance', () => {
  it('reports acceptance per verification pass and the time per pass', () => {
    const line = describeAcceptance({
      proposed: 304,
      accepted: 62,
      rate: 62 / 304,
      passes: 38,
      acceptedPerPass: 62 / 38,
      proposedPerPass: 8,
      tokensPerPass: 99 / 38,
      draftMs: 729.5,
      verifyMs: 490.7,
      prefillMs: 11.6,
    });
    expect(line).toBe(
      'drafts: 62 of 304 draft tokens accepted (20%); per verification pass (38): 1.63 accepted, 2.61 tokens, draft 19.2 ms + verify 12.9 ms',
    );
  });

  it('has no division by zero when no pass ran', () => {
    const line = describeAcceptance({
      proposed: 0,
      accepted: 0,
      rate: 0,
      passes: 0,
      acceptedPerPass: 0,
      proposedPerPass: 0,
      tokensPerPass: 1,
      draftMs: 0,
      verifyMs: 0,
      prefillMs: 3,
    });
    expect(line).toContain('draft 0.0 ms + verify 0.0 ms');
  });
});
