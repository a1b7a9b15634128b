// The one cache: TTLs, bounded size with least-recently-used eviction, and coalesced loads.
import { describe, expect, it } from 'vitest';
import { TtlLruCache, hashKey, secretKey, type PackedCodec } from '../../src/cache/cache.js';

function cache(maxEntries: number, clock = { now: 0 }) {
  return { c: new TtlLruCache<string>({ name: 't', maxEntries, now: () => clock.now }), clock };
}

describe('TtlLruCache', () => {
  it('serves a value until its TTL passes, and never caches a zero TTL', () => {
    const { c, clock } = cache(10);
    c.set('a', 'A', 100);
    c.set('z', 'Z', 0);
    clock.now = 99;
    expect(c.get('a')).toBe('A');
    expect(c.get('z')).toBeUndefined();
    clock.now = 100;
    expect(c.get('a')).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('evicts the least recently used entry, whatever the cache size', () => {
    for (const max of [2, 3, 8, 101]) {
      const { c } = cache(max);
      for (let i = 0; i < max; i++) c.set(`k${i}`, `v${i}`, 1_000);
      // Read the oldest entry: it becomes the most recent, so the next insert evicts k1 instead.
      expect(c.get('k0')).toBe('v0');
      c.set('new', 'N', 1_000);
      expect(c.get('k0'), `max ${max}`).toBe('v0');
      expect(c.get('k1'), `max ${max}`).toBeUndefined();
      expect(c.size).toBe(max);
    }
  });

  it('keeps an entry that is read all the time while many others come and go', () => {
    const { c } = cache(100);
    c.set('hot', 'H', 1_000_000);
    for (let i = 0; i < 10_000; i++) {
      expect(c.get('hot')).toBe('H');
      c.set(`cold${i}`, 'C', 1_000_000);
    }
    expect(c.get('hot')).toBe('H');
    expect(c.size).toBe(100);
    expect(c.stats.evictions).toBe(10_001 - 100);
  });

  it('an entry never read is evicted after maxEntries newer ones', () => {
    const { c } = cache(50);
    c.set('once', 'O', 1_000_000);
    for (let i = 0; i < 49; i++) c.set(`k${i}`, 'v', 1_000_000);
    expect(c.size).toBe(50);
    c.set('one-more', 'v', 1_000_000);
    expect(c.get('once')).toBeUndefined();
  });

  it('coalesces concurrent misses into one load and returns hits synchronously', async () => {
    const { c } = cache(10);
    let loads = 0;
    const loader = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 5));
      return { value: 'loaded', ttlMs: 1_000 };
    };
    const pending = [c.getOrLoad('k', loader), c.getOrLoad('k', loader), c.getOrLoad('k', loader)];
    expect(pending.every((p) => p instanceof Promise)).toBe(true);
    expect(await Promise.all(pending)).toEqual(['loaded', 'loaded', 'loaded']);
    expect(loads).toBe(1);
    expect(c.getOrLoad('k', loader)).toBe('loaded');
    expect(c.stats).toMatchObject({ misses: 1, coalesced: 2, hits: 1 });
  });

  it('a failing load rejects every waiter and caches nothing', async () => {
    const { c } = cache(10);
    const failing = async (): Promise<{ value: string; ttlMs: number }> => {
      throw new Error('backend down');
    };
    const a = c.getOrLoad('k', failing);
    const b = c.getOrLoad('k', failing);
    await expect(a).rejects.toThrow('backend down');
    await expect(b).rejects.toThrow('backend down');
    expect(await c.getOrLoad('k', async () => ({ value: 'ok', ttlMs: 1_000 }))).toBe('ok');
  });
});

/** Values are objects {n}; packed as their number; values whose n is negative cannot be packed. */
function twoLevel(hot: number, total: number, clock = { now: 0 }) {
  const unpacked: string[] = [];
  const codec: PackedCodec<{ n: number }> = {
    pack: (v) => (v.n < 0 ? undefined : String(v.n)),
    unpack: (s) => {
      unpacked.push(s);
      return Object.freeze({ n: Number(s) });
    },
  };
  const c = new TtlLruCache<{ n: number }>({ name: 't', maxEntries: hot, now: () => clock.now, packed: { maxEntries: total, codec } });
  return { c, clock, unpacked };
}

describe('TtlLruCache with a packed level', () => {
  it('serves a hot value as the object it was given, and an evicted one rebuilt from its packed form', () => {
    const { c, unpacked } = twoLevel(2, 10);
    const first = { n: 1 };
    c.set('a', first, 1_000);
    expect(c.get('a')).toBe(first);
    expect(unpacked).toEqual([]);
    c.set('b', { n: 2 }, 1_000);
    c.set('c', { n: 3 }, 1_000);
    // 'a' left the hot level: rebuilt, equal, not the same object; then hot again.
    const rebuilt = c.get('a');
    expect(rebuilt).toEqual(first);
    expect(rebuilt).not.toBe(first);
    expect(unpacked).toEqual(['1']);
    expect(c.get('a')).toBe(rebuilt);
    expect(unpacked).toEqual(['1']);
    expect(c.size).toBe(3);
    expect(c.stats.evictions).toBe(0);
  });

  it('a packed hit is synchronous and makes no load', () => {
    const { c } = twoLevel(1, 10);
    c.set('a', { n: 1 }, 1_000);
    c.set('b', { n: 2 }, 1_000);
    let loads = 0;
    const hit = c.getOrLoad('a', async () => {
      loads++;
      return { value: { n: -1 }, ttlMs: 1_000 };
    });
    expect(hit).toEqual({ n: 1 });
    expect(loads).toBe(0);
    expect(c.stats).toMatchObject({ hits: 1, misses: 0 });
  });

  it('honours the TTL in both levels', () => {
    const { c, clock } = twoLevel(1, 10);
    c.set('a', { n: 1 }, 100);
    c.set('b', { n: 2 }, 300);
    clock.now = 99;
    expect(c.get('a')).toEqual({ n: 1 }); // from the packed level; 'b' is packed now
    clock.now = 100;
    expect(c.get('a')).toBeUndefined();
    expect(c.get('b')).toEqual({ n: 2 });
    clock.now = 300;
    expect(c.get('b')).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('evicts the least recently used packed entry, but not one the hot level is serving', () => {
    const { c, unpacked } = twoLevel(2, 3);
    c.set('in-use', { n: 0 }, 1_000_000);
    // Read from the hot level only (the packed level's order is not touched) while others come and go:
    // 'in-use' becomes the oldest packed entry, and is kept all the same.
    for (let i = 1; i <= 10; i++) {
      expect(c.get('in-use')).toEqual({ n: 0 });
      c.set(`k${i}`, { n: i }, 1_000_000);
    }
    expect(c.size).toBe(3);
    expect(c.stats.evictions).toBe(10 - 2);
    expect(c.get('in-use')).toEqual({ n: 0 });
    expect(c.get('k10')).toEqual({ n: 10 });
    expect(unpacked).toEqual([]);
    expect(c.get('k8')).toBeUndefined();
    expect(c.get('k9')).toEqual({ n: 9 });
    expect(unpacked).toEqual(['9']);
  });

  it('keeps the whole bound: maxEntries of the packed level, not of the hot one', () => {
    const { c } = twoLevel(10, 1_000);
    for (let i = 0; i < 1_500; i++) c.set(`k${i}`, { n: i }, 1_000_000);
    expect(c.size).toBe(1_000);
    expect(c.get('k499')).toBeUndefined();
    expect(c.get('k500')).toEqual({ n: 500 });
    expect(c.stats.evictions).toBe(500);
  });

  it('a value the codec cannot pack lives in the hot level only', () => {
    const { c } = twoLevel(1, 10);
    c.set('unpackable', { n: -1 }, 1_000);
    expect(c.get('unpackable')).toEqual({ n: -1 });
    c.set('other', { n: 2 }, 1_000);
    expect(c.get('unpackable')).toBeUndefined();
    expect(c.stats.evictions).toBe(1);
  });

  it('a value replaced by an unpackable one is not served from its old packed form', () => {
    const { c } = twoLevel(1, 10);
    c.set('k', { n: 1 }, 1_000);
    c.set('k', { n: -1 }, 1_000);
    c.set('other', { n: 2 }, 1_000);
    expect(c.get('k')).toBeUndefined();
  });

  it('delete and clear empty both levels', () => {
    const { c } = twoLevel(1, 10);
    c.set('a', { n: 1 }, 1_000);
    c.set('b', { n: 2 }, 1_000);
    c.delete('a');
    c.delete('b');
    expect(c.get('a')).toBeUndefined();
    expect(c.get('b')).toBeUndefined();
    c.set('c', { n: 3 }, 1_000);
    c.set('d', { n: 4 }, 1_000);
    c.clear();
    expect(c.get('c')).toBeUndefined();
    expect(c.get('d')).toBeUndefined();
    expect(c.size).toBe(0);
  });
});

describe('hashKey', () => {
  it('is a fixed-length digest that separates its parts', () => {
    expect(hashKey('ab', 'c')).not.toBe(hashKey('a', 'bc'));
    expect(hashKey('x'.repeat(5_000))).toHaveLength(43);
    expect(hashKey('secret-token')).not.toContain('secret');
  });
});

describe('secretKey', () => {
  it('is hashKey of the secret, for repeated, short and slot-sharing secrets', () => {
    // Same length and same characters where the slot is taken from: only the middle differs.
    const base = 'eyJhbGciOiJSUzI1NiJ9.' + 'a'.repeat(900) + '.sig-end-1234567';
    const twins = ['x', 'y', 'z'].map((c) => base.slice(0, 100) + c + base.slice(101));
    for (let round = 0; round < 3; round++) {
      for (const s of [...twins, base, 'short', '']) expect(secretKey(s)).toBe(hashKey(s));
    }
    expect(new Set(twins.map(secretKey)).size).toBe(3);
  });

  it('stays exact while many tokens take turns in its slots', () => {
    const tokens = Array.from({ length: 2_000 }, (_, i) => `token-${i}-${'p'.repeat(i % 50)}-${i * 7919}`);
    for (let round = 0; round < 2; round++) for (const t of tokens) expect(secretKey(t)).toBe(hashKey(t));
  });
});
