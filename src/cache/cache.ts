// The one cache every evaluator uses: bounded (LRU), per-entry TTL, and request coalescing so that concurrent
// misses for one key make one backend call. Values and keys stay in memory only; keys of secrets are hashed
// by the caller (see hashKey).
import { hash } from 'node:crypto';

export interface CacheStats {
  hits: number;
  misses: number;
  coalesced: number;
  evictions: number;
}

export interface CacheObserver {
  onHit?(cache: string): void;
  onMiss?(cache: string): void;
  onCoalesced?(cache: string): void;
}

export interface CacheOptions {
  readonly name: string;
  readonly maxEntries: number;
  readonly now?: () => number;
  readonly observer?: CacheObserver;
}

export interface Loaded<V> {
  readonly value: V;
  /** How long the value stays fresh, in ms (0 or less: do not cache). */
  readonly ttlMs: number;
}

interface Entry<V> {
  value: V;
  expiresAt: number;
  /** When it was last (re)inserted, in the cache's insertion count. */
  seq: number;
}

export class TtlLruCache<V> {
  readonly name: string;
  readonly stats: CacheStats = { hits: 0, misses: 0, coalesced: 0, evictions: 0 };
  private readonly entries = new Map<string, Entry<V>>();
  private readonly inflight = new Map<string, Promise<V>>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly observer: CacheObserver | undefined;
  /** Insertions so far: entries are evicted in this order. */
  private seq = 0;

  constructor(opts: CacheOptions) {
    this.name = opts.name;
    this.maxEntries = Math.max(1, opts.maxEntries);
    this.now = opts.now ?? Date.now;
    this.observer = opts.observer;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A fresh value, or undefined. Refreshes the entry's LRU position. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    // Map keeps insertion order: re-insert to mark as most recently used. An entry among the newest half
    // cannot be evicted before its next refresh (fewer than maxEntries/2 entries are behind it), so only
    // older entries move: a delete + set on every hit was a measurable share of a warm Check.
    if (this.seq - e.seq >= this.maxEntries >> 1) {
      this.entries.delete(key);
      e.seq = ++this.seq;
      this.entries.set(key, e);
    }
    return e.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    if (!(ttlMs > 0)) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs, seq: ++this.seq });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.stats.evictions++;
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /**
   * The cached value, or the loader's (once for all concurrent callers of one key). A loader that throws
   * rejects every waiter and caches nothing; to cache a failure briefly, resolve with it and a short TTL.
   */
  getOrLoad(key: string, loader: () => Promise<Loaded<V>>): V | Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) {
      this.stats.hits++;
      this.observer?.onHit?.(this.name);
      return hit;
    }
    const pending = this.inflight.get(key);
    if (pending) {
      this.stats.coalesced++;
      this.observer?.onCoalesced?.(this.name);
      return pending;
    }
    this.stats.misses++;
    this.observer?.onMiss?.(this.name);
    const p = (async () => {
      try {
        const { value, ttlMs } = await loader();
        this.set(key, value, ttlMs);
        return value;
      } finally {
        this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, p);
    return p;
  }
}

/** SHA-256 of a secret (token, key) as a cache key: the secret itself is never a key. One-shot hash: no Hash object. */
export function hashKey(...parts: string[]): string {
  return hash('sha256', parts.join('\0'), 'base64url');
}
