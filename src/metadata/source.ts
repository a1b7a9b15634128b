// The contract every metadata source kind (http, vault) implements, and what one fetch can end in.
import type { CelProgram } from '../cel/compile.js';
import type { CheckContext } from '../pipeline/context.js';
import type { MaybePromise } from '../pipeline/maybe-async.js';
import type { SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import type { ResponseCacheSpec } from './response-cache.js';

export type SourceOutcome =
  /** The value lands at auth.metadata.<name>. */
  | { kind: 'ok'; value: unknown }
  /**
   * No value (Kuadrant semantics for a failed metadata evaluator): later stages see no key and decide, e.g.
   * `has(auth.metadata.x.data)` denies. `reason` is secret-free, for traces and debug logs.
   */
  | { kind: 'absent'; reason: string }
  /** The source decides the Check itself: 503 when its backend is down or slow, 403 when it refuses. */
  | { kind: 'deny'; status: number; reason: string };

export interface MetadataSource {
  readonly name: string;
  readonly kind: string;
  readonly priority: number;
  readonly when: readonly CelProgram[];
  /** The outcome now when it is cached, else a promise (a backend call). */
  fetch(ctx: CheckContext): MaybePromise<SourceOutcome>;
}

export interface SourceCompileInput {
  /** The source's name: its result is auth.metadata.<name>. */
  readonly name: string;
  /** The kind's own config node (the value under `http:` or `vault:`). */
  readonly config: YNode;
  /** The common `cache:` block, when the kind supports it. */
  readonly cache: ResponseCacheSpec | undefined;
  readonly sc: SectionContext;
}

/** Builds a source's per-request part once, at policy load; undefined after reporting errors. */
export type MetadataSourceFactory = (
  input: SourceCompileInput,
) => Pick<MetadataSource, 'kind' | 'fetch'> | undefined;
