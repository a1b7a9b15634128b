// The one cache: TTLs, bounded size with least-recently-used eviction, and coalesced loads.
import { describe, expect, it } from 'vitest';
import { TtlLruCache, hashKey } from '../../src/cache/cache.js';

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

describe('hashKey', () => {
  it('is a fixed-length digest that separates its parts', () => {
    expect(hashKey('ab', 'c')).not.toBe(hashKey('a', 'bc'));
    expect(hashKey('x'.repeat(5_000))).toHaveLength(43);
    expect(hashKey('secret-token')).not.toContain('secret');
  });
});
