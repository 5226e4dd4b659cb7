/**
 * Why a sequence stopped: a stop token (kept as its last token), the token limit (`maxTokens`), or the
 * model's context length (`'context'`: prompt and generated tokens together fill it).
 */
export type FinishReason = 'stop' | 'length' | 'context';

/** One generated continuation of the prompt. */
export interface GeneratedSequence {
  /** Generated token ids (the prompt excluded; a stop token, when hit, is the last). */
  readonly tokens: readonly number[];
  /** `[tokens.length]` natural-log probability of each token under the model. */
  readonly logProbabilities: readonly number[];
  /** The strategy's ranking score (sum of log-probabilities unless the strategy says otherwise). */
  readonly score: number;
  readonly finishReason: FinishReason;
}
