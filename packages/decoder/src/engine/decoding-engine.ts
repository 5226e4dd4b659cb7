import type { DType, KVStorage } from '@deft/core';
import { assertInteger } from '@deft/core/validate';
import { PagePool } from '@deft/kv-cache';
import type { LlamaModel } from '@deft/model';
import type { PlannerOptions } from '@deft/planner';
import { DecodingSession } from './decoding-session.js';

/** Options of {@link DecodingEngine.create}. */
export interface DecodingEngineOptions {
  /** KV pages in the pool (default 1024). */
  readonly numPages?: number;
  /** Tokens per page (default 16). */
  readonly pageSize?: number;
  /** KV element type (default `f32`). */
  readonly kvDtype?: DType;
  /**
   * How each step's attention is planned, handed to the planner unchanged: `strategy` (default
   * `deft-flatten`; `sequence` is the baseline), `chunkSize`, `targetWorkUnits`, `maxPartialRatio`.
   */
  readonly planner?: PlannerOptions;
}

/**
 * The wiring every strategy runs on: a model, a page pool and the KV storage it indexes. Each search
 * opens a {@link DecodingSession} (a token tree with its KV cache); sessions share the pool, and a
 * released session gives back every page it held.
 *
 * `dispose()` frees the storage (idempotent); it does not dispose the model.
 *
 * @example
 * ```ts
 * const engine = DecodingEngine.create(model, { numPages: 512 });
 * const result = await runStrategy(beamSearch(engine, { prompt, width: 4, maxTokens: 32 }));
 * engine.pool.usedCount; // 0 again
 * ```
 */
export class DecodingEngine {
  readonly model: LlamaModel;
  readonly pool: PagePool;
  readonly storage: KVStorage;
  readonly options: Readonly<DecodingEngineOptions>;
  private isDisposed = false;

  private constructor(model: LlamaModel, pool: PagePool, storage: KVStorage, options: DecodingEngineOptions) {
    this.model = model;
    this.pool = pool;
    this.storage = storage;
    this.options = options;
  }

  /**
   * Creates the pool and the KV storage for a model.
   * @throws InvalidArgumentError for a bad page count or size.
   * @example
   * ```ts
   * const engine = DecodingEngine.create(model, { numPages: 256, pageSize: 16, kvDtype: 'f16' });
   * ```
   */
  static create(model: LlamaModel, options: DecodingEngineOptions = {}): DecodingEngine {
    const numPages = assertInteger('options.numPages', options.numPages ?? 1024, 1);
    const pageSize = assertInteger('options.pageSize', options.pageSize ?? 16, 1);
    const pool = new PagePool({ numPages, pageSize });
    const storage = model.createKVStorage({ numPages, pageSize, dtype: options.kvDtype ?? 'f32' });
    return new DecodingEngine(model, pool, storage, options);
  }

  /** True after {@link DecodingEngine.dispose}. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * Opens a session: a token tree whose root holds `prompt`, with its KV cache in this engine's pool.
   * Nothing is computed until the first `evaluate()`.
   * @throws InvalidArgumentError for an invalid token id; CapacityError if the prompt does not fit.
   * @example
   * ```ts
   * const session = engine.openSession(tokenizer.encode('Once upon a time'));
   * ```
   */
  openSession(prompt: ArrayLike<number>): DecodingSession {
    return new DecodingSession(this, prompt);
  }

  /** Frees the KV storage (idempotent). Sessions must be released first. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.storage.dispose();
  }
}
