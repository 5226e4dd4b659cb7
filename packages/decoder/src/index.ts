export type { DraftNode } from './draft/draft-tree.js';
export { buildDraftTrie, draftTokenCount } from './draft/draft-tree.js';
export type { Drafter, DraftRequest } from './draft/drafter.js';
export type { DraftEngine, ModelDrafterOptions } from './draft/model-drafter.js';
export { ModelDrafter } from './draft/model-drafter.js';
export type { PromptLookupOptions } from './draft/prompt-lookup-draft.js';
export { promptLookupDraft, promptLookupDrafter } from './draft/prompt-lookup-draft.js';
export { selfDraftCheckpoint } from './draft/self-draft.js';
export type { DecodeEvent, SequenceTokens, StepEvent, StrategyName } from './engine/decode-events.js';
export type { DecodeStats } from './engine/decode-stats.js';
export { summarizeSteps } from './engine/decode-stats.js';
export type { DecodingEngineOptions } from './engine/decoding-engine.js';
export { DecodingEngine } from './engine/decoding-engine.js';
export type { SessionEngine, SessionPlacement } from './engine/decoding-session.js';
export { DecodingSession } from './engine/decoding-session.js';
export type { FinishReason, GeneratedSequence } from './engine/generated-sequence.js';
export type { SessionOpener } from './engine/session-opener.js';
export type { SharedTreeEngineOptions, SharedTreeStats } from './engine/shared-tree-engine.js';
export { SharedTreeEngine } from './engine/shared-tree-engine.js';
export type { StepStats } from './runner/step-stats.js';
export type {
  EvaluateOptions,
  NodeRows,
  TreeEvaluation,
  TreeModelRunnerOptions,
} from './runner/tree-model-runner.js';
export { TreeModelRunner } from './runner/tree-model-runner.js';
export type { ChosenToken } from './sampling/choose-token.js';
export { argmaxToken, chooseToken } from './sampling/choose-token.js';
export { samplingDistribution } from './sampling/sampling-distribution.js';
export type { ResolvedSampling, SamplingOptions } from './sampling/sampling-options.js';
export { resolveSampling } from './sampling/sampling-options.js';
export { SeededRandom } from './sampling/seeded-random.js';
export type { DraftAcceptanceRule, DraftVerdict } from './sampling/speculative-sample.js';
export { speculativeSample } from './sampling/speculative-sample.js';
export type {
  BeamCandidate,
  BeamSearchOptions,
  BeamSearchResult,
  BeamSelection,
  BeamState,
} from './strategies/beam-search.js';
export { beamHypothesisScore, beamSearch, selectBeams } from './strategies/beam-search.js';
export type { BestOfNOptions, BestOfNResult } from './strategies/best-of-n.js';
export { bestOfN } from './strategies/best-of-n.js';
export type { CommonDecodeOptions } from './strategies/common-options.js';
export type { FewShotOptions, FewShotResult } from './strategies/few-shot.js';
export { fewShot } from './strategies/few-shot.js';
export type { GenerateOptions, GenerateResult } from './strategies/generate.js';
export { generate } from './strategies/generate.js';
export { runStrategy } from './strategies/run-strategy.js';
export type {
  AcceptanceStats,
  DraftProposer,
  SpeculativeOptions,
  SpeculativeResult,
} from './strategies/speculative-decode.js';
export { speculativeDecode } from './strategies/speculative-decode.js';
export type {
  ScoredThought,
  ThoughtCandidate,
  ThoughtScore,
  TreeOfThoughtsOptions,
  TreeOfThoughtsResult,
} from './strategies/tree-of-thoughts.js';
export { treeOfThoughts } from './strategies/tree-of-thoughts.js';
