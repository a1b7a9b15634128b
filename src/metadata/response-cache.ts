// Kuadrant's per-source `cache: {key: {expression|selector|value}, ttl}`: a source's result is kept under a
// CEL-computed key for `ttl` (seconds; default 60). Concurrent misses for one key make one backend call.
// Keys are hashed (they are often built from credentials) and scoped to the policy and source.
import type { CelProgram } from '../cel/compile.js';
import { hashKey, TtlLruCache } from '../cache/cache.js';
import type { CheckContext } from '../pipeline/context.js';
import { compileField, type SectionContext } from '../pipeline/section.js';
import type { Services } from '../pipeline/services.js';
import type { YNode } from '../policy/yaml-node.js';
import { readDurationMs } from './durations.js';

export interface ResponseCacheSpec {
  readonly key: CelProgram | string;
  readonly ttlMs: number;
}

const DEFAULT_TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;

export function compileResponseCache(node: YNode | undefined, what: string, sc: SectionContext): ResponseCacheSpec | undefined {
  if (!node || node.isNull) return undefined;
  node.checkKeys(['key', 'ttl'], what);
  const keyNode = node.get('key');
  let key: CelProgram | string | undefined;
  if (!keyNode || keyNode.isNull) {
    node.error(`${what}.key is required (a CEL expression naming what the result depends on)`);
  } else if (keyNode.isMap) {
    keyNode.checkKeys(['expression', 'value', 'selector'], `${what}.key`);
    if (keyNode.get('selector')) {
      keyNode.get('selector')!.error(`${what}.key.selector (Authorino JSON paths) is not supported; use "expression" (CEL)`);
    } else if (keyNode.get('value')) {
      key = keyNode.get('value')!.string(`${what}.key.value`);
    } else {
      key = compileField(keyNode.get('expression'), 'any', `${what}.key.expression`, sc);
      if (!keyNode.get('expression')) keyNode.error(`${what}.key: give an expression`);
    }
  } else {
    key = compileField(keyNode, 'any', `${what}.key`, sc);
  }
  const ttlMs = readDurationMs(node.get('ttl'), `${what}.ttl`, DEFAULT_TTL_MS);
  return key === undefined ? undefined : { key, ttlMs };
}

/** The key of this Check's entry: policy, source and the evaluated key, hashed. Throws on CEL errors. */
export function responseCacheKey(spec: ResponseCacheSpec, scope: string, ctx: CheckContext): string {
  const raw = typeof spec.key === 'string' ? spec.key : spec.key.evaluate(ctx.activation);
  const text = typeof raw === 'string' ? raw : JSON.stringify(raw, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  return hashKey(scope, text ?? 'null');
}

/** One cache for every cached metadata source, shared across policy reloads. */
export function sharedResponseCache<V>(services: Services): TtlLruCache<V> {
  return services.singleton(
    'metadata:response-cache',
    () => new TtlLruCache<V>({ name: 'metadata', maxEntries: MAX_ENTRIES, observer: services.metrics.cacheObserver() }),
  );
}
