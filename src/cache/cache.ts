// The one cache every evaluator uses: bounded (LRU), per-entry TTL, and request coalescing so that concurrent
// misses for one key make one backend call. Values and keys stay in memory only; keys of secrets are hashed
// by the caller (see hashKey).
//
// Optionally two levels, for caches that must hold very many values of which few are in use at a time (the
// TokenReview verdicts: 100,000 identities, issue 9): `maxEntries` values as built (the hot level, whose hits
// cost what a one-level cache's do), and up to `packed.maxEntries` as one string each (the packed level),
// which a hit turns back into a value and moves to the hot level. A built identity object costs ~1 KiB of
// heap, its packed string with its key a fifth of that.
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

/** How a two-level cache stores a value in its packed level. */
export interface PackedCodec<V> {
  /** The value as one string; undefined to keep it in the hot level only (it is then lost when evicted from there). */
  pack(value: V): string | undefined;
  /** The value `pack` was given, rebuilt (equal, not the same object). */
  unpack(packed: string): V;
}

export interface CacheOptions<V = unknown> {
  readonly name: string;
  /** Entries kept at most; with `packed`, the values kept as built (the hot level). */
  readonly maxEntries: number;
  readonly now?: () => number;
  readonly observer?: CacheObserver;
  /** A second level of up to `maxEntries` (at least the hot level's) values kept packed. */
  readonly packed?: { readonly maxEntries: number; readonly codec: PackedCodec<V> };
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
  /** The packed level, if any: key → expiry (EXPIRY_CHARS base-36 digits) followed by the packed value, in LRU order. */
  private readonly packed: Map<string, string> | undefined;
  private readonly packedMaxEntries: number;
  private readonly codec: PackedCodec<V> | undefined;

  constructor(opts: CacheOptions<V>) {
    this.name = opts.name;
    this.maxEntries = Math.max(1, opts.maxEntries);
    this.now = opts.now ?? Date.now;
    this.observer = opts.observer;
    this.codec = opts.packed?.codec;
    this.packed = opts.packed ? new Map() : undefined;
    // At least the hot level's size, so that evicting from the packed level always finds a key the hot level
    // does not hold (see evictPacked).
    this.packedMaxEntries = Math.max(this.maxEntries, opts.packed?.maxEntries ?? 0);
  }

  /** Keys cached, in either level (with two levels, counted by a walk of the hot level: for tests and diagnostics). */
  get size(): number {
    if (!this.packed) return this.entries.size;
    let hotOnly = 0;
    for (const key of this.entries.keys()) if (!this.packed.has(key)) hotOnly++;
    return this.packed.size + hotOnly;
  }

  /** A fresh value, or undefined. Refreshes the entry's LRU position. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return this.packed === undefined ? undefined : this.getPacked(key);
    if (e.expiresAt <= this.now()) {
      this.entries.delete(key);
      this.packed?.delete(key);
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
    const expiresAt = this.now() + ttlMs;
    if (this.packed) this.setPacked(key, value, expiresAt);
    this.setHot(key, value, expiresAt);
  }

  delete(key: string): void {
    this.entries.delete(key);
    this.packed?.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.packed?.clear();
  }

  private setHot(key: string, value: V, expiresAt: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt, seq: ++this.seq });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      // Leaving the hot level loses nothing when the packed level holds the value.
      if (!this.packed?.has(oldest)) this.stats.evictions++;
    }
  }

  /** A hit in the packed level: the value rebuilt, moved to the hot level and to the newest end of the packed one. */
  private getPacked(key: string): V | undefined {
    const packed = this.packed!;
    const stored = packed.get(key);
    if (stored === undefined) return undefined;
    const expiresAt = parseInt(stored.slice(0, EXPIRY_CHARS), 36);
    packed.delete(key);
    if (expiresAt <= this.now()) return undefined;
    packed.set(key, stored);
    const value = this.codec!.unpack(stored.slice(EXPIRY_CHARS));
    this.setHot(key, value, expiresAt);
    return value;
  }

  private setPacked(key: string, value: V, expiresAt: number): void {
    const packed = this.packed!;
    packed.delete(key);
    const text = this.codec!.pack(value);
    if (text === undefined) return;
    // The expiry in front, fixed width: one string per entry, no object around it. Joined rather than added:
    // `a + b` makes a cons string (an object pointing at both parts), join one flat string.
    packed.set(key, [Math.ceil(expiresAt).toString(36).padStart(EXPIRY_CHARS, '0'), text].join(''));
    this.evictPacked();
  }

  /**
   * Evicts the least recently used packed entries beyond the bound. Hits in the hot level do not touch the packed
   * level (they stay as cheap as with one level), so its order is stale for the values in use: an oldest key the
   * hot level holds is in use, and moves to the newest end instead of being evicted.
   */
  private evictPacked(): void {
    const packed = this.packed!;
    while (packed.size > this.packedMaxEntries) {
      const oldest = packed.keys().next().value as string;
      const stored = packed.get(oldest)!;
      packed.delete(oldest);
      if (this.entries.has(oldest)) packed.set(oldest, stored);
      else this.stats.evictions++;
    }
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

/** Base-36 digits of an expiry in ms since the epoch: 9 reach the year 5138. */
const EXPIRY_CHARS = 9;

/** SHA-256 of a secret (token, key) as a cache key: the secret itself is never a key. One-shot hash: no Hash object. */
export function hashKey(...parts: string[]): string {
  return hash('sha256', parts.join('\0'), 'base64url');
}

// The same workload token arrives Check after Check, and hashing ~1 KB of it was the largest single part of a
// warm identity lookup (~1.5 µs in-process, 4–5% of a loaded server's busy time). The tokens seen last keep
// their hash: a slot picked from the token's length and a few characters of its end (a JWT's signature, which
// differs between tokens), then an exact string comparison. A slot holds one token (bounded memory: 256
// tokens); a miss hashes and takes the slot.
const SECRET_MEMO_SLOTS = 256;
const memoSecrets: Array<string | undefined> = new Array<string | undefined>(SECRET_MEMO_SLOTS).fill(undefined);
const memoHashes: string[] = new Array<string>(SECRET_MEMO_SLOTS).fill('');

/** hashKey of one secret, remembered for the tokens seen last. */
export function secretKey(secret: string): string {
  const n = secret.length;
  if (n < 8) return hashKey(secret);
  const slot =
    (n * 31 + secret.charCodeAt(n - 1) * 7 + secret.charCodeAt(n - 3) * 131 + secret.charCodeAt(n - 7)) &
    (SECRET_MEMO_SLOTS - 1);
  if (memoSecrets[slot] === secret) return memoHashes[slot]!;
  const key = hashKey(secret);
  memoSecrets[slot] = secret;
  memoHashes[slot] = key;
  return key;
}
