import type { RunSettings } from '../app/run-settings.js';

/** Where a model or tokenizer file comes from: a file the user picked, or a URL. */
export type FileSource =
  | { readonly kind: 'file'; readonly file: File }
  | { readonly kind: 'url'; readonly url: string };

/** Messages from the page to the decoding worker. */
export type WorkerRequest =
  | { readonly type: 'load'; readonly model: FileSource; readonly tokenizer?: FileSource }
  | { readonly type: 'run'; readonly settings: RunSettings }
  | { readonly type: 'stop' };

/** How a node of the drawn tree ended up. */
export type ViewNodeState = 'live' | 'pruned' | 'accepted' | 'rejected';

/** One node of the drawn tree: a run of tokens on one branch. */
export interface ViewNode {
  readonly id: number;
  /** `-1` for the root (the prompt). */
  readonly parent: number;
  readonly tokens: readonly number[];
  readonly text: string;
  readonly state: ViewNodeState;
  /** Speculative decoding: how many leading tokens of a draft node were accepted (the rest were rejected). */
  readonly accepted: number;
  /** KV pages the node holds (0 once freed). */
  readonly pages: number;
  /**
   * `[tokens.length]` natural-log probability of each token under the model; NaN where not known (the
   * prompt, and draft or thought-opening tokens off the kept sequences).
   */
  readonly logProbabilities: readonly number[];
}

/** A sequence the strategy kept, and the node where it ends. */
export interface KeptSequence {
  readonly tokens: readonly number[];
  readonly text: string;
  readonly score: number;
  readonly node: number;
}

/** Live figures, cumulative over the run. */
export interface LiveStats {
  readonly step: number;
  readonly generatedTokens: number;
  readonly tokensPerSecond: number;
  /** KV bytes read by tree attention (the DeFT plans), all layers. */
  readonly kvBytesRead: number;
  /** KV bytes sequence attention (each query reading its whole path) would read. */
  readonly sequenceKvBytes: number;
  readonly pagesUsed: number;
  readonly pagesShared: number;
  readonly treeNodes: number;
  readonly leaves: number;
}

/** Messages from the worker to the page. */
export type WorkerEvent =
  | { readonly type: 'status'; readonly text: string }
  | { readonly type: 'loaded'; readonly description: string }
  | { readonly type: 'step'; readonly nodes: readonly ViewNode[]; readonly stats: LiveStats }
  | {
      readonly type: 'done';
      readonly nodes: readonly ViewNode[];
      readonly stats: LiveStats;
      readonly kept: readonly KeptSequence[];
      readonly pagesInUse: number;
    }
  | { readonly type: 'stopped'; readonly nodes: readonly ViewNode[]; readonly pagesInUse: number }
  | { readonly type: 'error'; readonly message: string };
