import type { AcceptanceStats } from '@deft/decoder';

/**
 * Speculative decoding's counters as one line of `deft generate` output: draft tokens accepted, accepted
 * and generated tokens per verification pass, and the time per pass spent drafting and verifying (to set
 * against a plain decoding step's time).
 *
 * @example
 * ```ts
 * describeAcceptance(result.acceptance);
 * // drafts: 62 of 304 draft tokens accepted (20%); per verification pass (38): 1.63 accepted, 2.61 tokens, draft 19.2 ms + verify 12.9 ms
 * ```
 */
export function describeAcceptance(acceptance: AcceptanceStats): string {
  const perPass = (milliseconds: number) =>
    acceptance.passes === 0 ? '0.0' : (milliseconds / acceptance.passes).toFixed(1);
  return (
    `drafts: ${acceptance.accepted} of ${acceptance.proposed} draft tokens accepted ` +
    `(${(acceptance.rate * 100).toFixed(0)}%); per verification pass (${acceptance.passes}): ` +
    `${acceptance.acceptedPerPass.toFixed(2)} accepted, ${acceptance.tokensPerPass.toFixed(2)} tokens, ` +
    `draft ${perPass(acceptance.draftMs)} ms + verify ${perPass(acceptance.verifyMs)} ms`
  );
}
