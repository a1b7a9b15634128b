// The token-budget `debit` of both counting stores: same scenarios, same answers. `hit` is untouched
// (test/ratelimit covers it); here: spending past the limit, reservations (ifRoom), releases tied to the
// reserving window, and that budgets share the stores with rate limits without interfering.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRateLimitStore } from '../../src/ratelimit/memory-store.js';
import { RedisRateLimitStore } from '../../src/ratelimit/redis-store.js';
import type { DebitCounter, RateLimitStore } from '../../src/ratelimit/store.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

const HOUR = 3_600_000;
const T0 = 1_700_000_000_000;

let redis: RedisServerHandle;
const redisStores: RedisRateLimitStore[] = [];
let prefix = 0;

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await Promise.all(redisStores.map((store) => store.close()));
  await redis.close();
});

const kinds: Array<[string, () => Promise<RateLimitStore>]> = [
  ['memory', async () => new MemoryRateLimitStore()],
  [
    'redis',
    async () => {
      const store = new RedisRateLimitStore({ url: redis.url, keyPrefix: `debit-${++prefix}:`, clock: 'caller', commandTimeoutMs: 2000 });
      redisStores.push(store);
      await store.waitUntilUp();
      return store;
    },
  ],
];

function budget(key: string, cost: number, limit = 1000, extra: Partial<DebitCounter> = {}): DebitCounter {
  return { key, limit, windowMs: HOUR, cost, ...extra };
}

for (const [kind, make] of kinds) {
  describe(`${kind} store debit`, () => {
    it('spends past the limit without ifRoom, then a reservation check finds no room', async () => {
      const store = await make();
      const first = await store.debit({ counters: [budget('a', 600)], nowMs: T0 });
      expect(first.allowed).toBe(true);
      expect(first.counters[0]).toMatchObject({ used: 600, remaining: 400, exceeded: false, windowStartMs: T0, resetMs: HOUR });
      const second = await store.debit({ counters: [budget('a', 600)], nowMs: T0 + 1000 });
      expect(second.counters[0]).toMatchObject({ used: 1200, remaining: 0, exceeded: true, windowStartMs: T0 });
      const check = await store.debit({ counters: [budget('a', 0)], ifRoom: true, nowMs: T0 + 2000 });
      expect(check.allowed).toBe(false);
      expect(check.exceededIndex).toBe(0);
      expect(check.counters[0]).toMatchObject({ used: 1200, resetMs: HOUR - 2000 });
      const other = await store.debit({ counters: [budget('b', 0)], ifRoom: true, nowMs: T0 + 2000 });
      expect(other.allowed).toBe(true);
      expect(other.counters[0]).toMatchObject({ used: 0, windowStartMs: undefined });
    });

    it('a cost-0 check passes while used < limit and spends nothing', async () => {
      const store = await make();
      await store.debit({ counters: [budget('c', 999)], nowMs: T0 });
      const check = await store.debit({ counters: [budget('c', 0)], ifRoom: true, nowMs: T0 });
      expect(check.allowed).toBe(true);
      expect(check.counters[0]?.used).toBe(999);
      await store.debit({ counters: [budget('c', 1)], nowMs: T0 });
      expect((await store.debit({ counters: [budget('c', 0)], ifRoom: true, nowMs: T0 })).allowed).toBe(false);
    });

    it('ifRoom reserves on every counter or on none', async () => {
      const store = await make();
      await store.debit({ counters: [budget('in', 900), budget('out', 100)], nowMs: T0 });
      const refused = await store.debit({ counters: [budget('in', 200), budget('out', 200)], ifRoom: true, nowMs: T0 });
      expect(refused.allowed).toBe(false);
      expect(refused.counters.map((c) => c.exceeded)).toEqual([true, false]);
      expect(refused.counters.map((c) => c.used)).toEqual([900, 100]); // nothing written
      const granted = await store.debit({ counters: [budget('in', 100), budget('out', 200)], ifRoom: true, nowMs: T0 });
      expect(granted.allowed).toBe(true);
      expect(granted.counters.map((c) => c.used)).toEqual([1000, 300]);
    });

    it('a release gives back a reservation only in the window it was made in', async () => {
      const store = await make();
      const reserved = await store.debit({ counters: [budget('r', 500)], ifRoom: true, nowMs: T0 });
      const start = reserved.counters[0]!.windowStartMs!;
      expect(start).toBe(T0);
      // Reconcile: real usage 120 replaces the 500 reserved.
      const settled = await store.debit({ counters: [budget('r', 120, 1000, { release: { units: 500, windowStartMs: start } })], nowMs: T0 + 10 });
      expect(settled.counters[0]?.used).toBe(120);
      // A second reservation, then the window ends before its response: the release must not touch the new window.
      const again = await store.debit({ counters: [budget('r', 500)], ifRoom: true, nowMs: T0 + 20 });
      expect(again.counters[0]?.used).toBe(620);
      const later = await store.debit({
        counters: [budget('r', 300, 1000, { release: { units: 500, windowStartMs: start } })],
        nowMs: T0 + HOUR + 5,
      });
      expect(later.counters[0]).toMatchObject({ used: 300, windowStartMs: T0 + HOUR + 5 });
    });

    it('a release never takes a counter below zero', async () => {
      const store = await make();
      const reserved = await store.debit({ counters: [budget('z', 50)], ifRoom: true, nowMs: T0 });
      const out = await store.debit({
        counters: [budget('z', 0, 1000, { release: { units: 400, windowStartMs: reserved.counters[0]!.windowStartMs! } })],
        nowMs: T0,
      });
      expect(out.counters[0]?.used).toBe(0);
    });

    it('rejects invalid debits the same way', async () => {
      const store = await make();
      await expect(store.debit({ counters: [budget('x', -1)] })).rejects.toThrow(TypeError);
      await expect(store.debit({ counters: [budget('x', 1.5)] })).rejects.toThrow(TypeError);
      await expect(
        store.debit({ counters: [budget('x', 1, 10, { release: { units: 1, windowStartMs: T0 } })], ifRoom: true }),
      ).rejects.toThrow(/ifRoom/);
    });

    it('hit keeps its own semantics next to debits (a budget and a rate limit are different keys)', async () => {
      const store = await make();
      await store.debit({ counters: [budget('shared-name', 5000)], nowMs: T0 });
      const hit = await store.hit({ counters: [{ key: 'rate-limit-key', limit: 2, windowMs: HOUR }], nowMs: T0 });
      expect(hit.allowed).toBe(true);
      expect(hit.counters[0]?.remaining).toBe(1);
    });
  });
}
