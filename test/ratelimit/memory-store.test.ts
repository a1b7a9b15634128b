import { describe, expect, it } from 'vitest';
import { MemoryRateLimitStore } from '../../src/ratelimit/memory-store.js';
import { RateLimitStoreUnavailableError, type HitCounter } from '../../src/ratelimit/store.js';

const MINUTE = 60_000;
const T0 = 1_700_000_000_000;

/** A store whose clock the test moves by hand. */
function storeWithClock(options: { maxKeys?: number } = {}): { store: MemoryRateLimitStore; clock: { now: number } } {
  const clock = { now: T0 };
  return { store: new MemoryRateLimitStore({ ...options, now: () => clock.now }), clock };
}

function perMinute(key: string, limit = 100): HitCounter {
  return { key, limit, windowMs: MINUTE };
}

async function countAllowed(store: MemoryRateLimitStore, counters: HitCounter[], attempts: number): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < attempts; i++) if ((await store.hit({ counters })).allowed) allowed++;
  return allowed;
}

describe('MemoryRateLimitStore', () => {
  it('allows 100 per window, denies the 101st, and reports which counter and when it resets', async () => {
    const { store, clock } = storeWithClock();
    const sa = [perMinute('per-workload/system:serviceaccount:team-a:default')];
    expect(await countAllowed(store, sa, 100)).toBe(100);

    clock.now = T0 + 15_000;
    const denied = await store.hit({ counters: sa });
    expect(denied.allowed).toBe(false);
    expect(denied.exceededIndex).toBe(0);
    expect(denied.counters[0]).toEqual({ limit: 100, windowMs: MINUTE, remaining: 0, resetMs: 45_000, exceeded: true });
  });

  it('keeps another key independent', async () => {
    const { store } = storeWithClock();
    expect(await countAllowed(store, [perMinute('team-a')], 101)).toBe(100);
    const other = await store.hit({ counters: [perMinute('team-b')] });
    expect(other.allowed).toBe(true);
    expect(other.counters[0]?.remaining).toBe(99);
  });

  it('window is [first spend, first spend + window): last ms still denied, the window end allows again', async () => {
    const { store, clock } = storeWithClock();
    const sa = [perMinute('team-a')];
    await countAllowed(store, sa, 100);
    clock.now = T0 + MINUTE - 1;
    const lastMs = await store.hit({ counters: sa });
    expect(lastMs.allowed).toBe(false);
    expect(lastMs.counters[0]?.resetMs).toBe(1);

    clock.now = T0 + MINUTE;
    const fresh = await store.hit({ counters: sa });
    expect(fresh.allowed).toBe(true);
    expect(fresh.counters[0]).toMatchObject({ remaining: 99, resetMs: MINUTE });
    expect(await countAllowed(store, sa, 100)).toBe(99);
  });

  it('anchors the window at the first spend, not at clock boundaries', async () => {
    const { store, clock } = storeWithClock();
    clock.now = T0 + 42_000;
    await store.hit({ counters: [perMinute('team-a', 1)] });
    clock.now = T0 + 42_000 + MINUTE - 1;
    expect((await store.hit({ counters: [perMinute('team-a', 1)] })).allowed).toBe(false);
    clock.now = T0 + 42_000 + MINUTE;
    expect((await store.hit({ counters: [perMinute('team-a', 1)] })).allowed).toBe(true);
  });

  it('a denied multi-rate Check spends nothing on the counters that had room', async () => {
    const { store } = storeWithClock();
    const burst: HitCounter = { key: 'team-a', limit: 2, windowMs: 1_000 };
    const sustained: HitCounter = { key: 'team-a', limit: 10, windowMs: MINUTE };
    const team = [burst, sustained];
    expect(await countAllowed(store, team, 2)).toBe(2);

    const denied = await store.hit({ counters: team });
    expect(denied.allowed).toBe(false);
    expect(denied.exceededIndex).toBe(0);
    expect(denied.counters.map((c) => c.exceeded)).toEqual([true, false]);
    expect(denied.counters[1]?.remaining).toBe(8);

    // Repeated denials still leave the sustained budget untouched.
    await countAllowed(store, team, 5);
    const sustainedOnly = await store.hit({ counters: [sustained], cost: 0 });
    expect(sustainedOnly.counters[0]?.remaining).toBe(8);
  });

  it('names the exceeded counter whose window ends last', async () => {
    const { store } = storeWithClock();
    const perSecond: HitCounter = { key: 'k', limit: 1, windowMs: 1_000 };
    const perHour: HitCounter = { key: 'k', limit: 1, windowMs: 3_600_000 };
    await store.hit({ counters: [perSecond, perHour] });
    const denied = await store.hit({ counters: [perSecond, perHour] });
    expect(denied.counters.map((c) => c.exceeded)).toEqual([true, true]);
    expect(denied.exceededIndex).toBe(1);
  });

  it('spends `cost` units and denies a cost that no longer fits, without spending it', async () => {
    const { store } = storeWithClock();
    const tokens = [{ key: 'tokens', limit: 100, windowMs: MINUTE }];
    expect((await store.hit({ counters: tokens, cost: 60 })).counters[0]?.remaining).toBe(40);
    const tooMuch = await store.hit({ counters: tokens, cost: 41 });
    expect(tooMuch.allowed).toBe(false);
    expect(tooMuch.counters[0]?.remaining).toBe(40);
    const exact = await store.hit({ counters: tokens, cost: 40 });
    expect(exact.allowed).toBe(true);
    expect(exact.counters[0]?.remaining).toBe(0);
  });

  it('cost 0 checks without spending: allowed while any unit remains', async () => {
    const { store } = storeWithClock();
    const one = [{ key: 'k', limit: 1, windowMs: MINUTE }];
    expect((await store.hit({ counters: one, cost: 0 })).allowed).toBe(true);
    expect((await store.hit({ counters: one, cost: 0 })).allowed).toBe(true);
    expect((await store.hit({ counters: one })).allowed).toBe(true);
    expect((await store.hit({ counters: one, cost: 0 })).allowed).toBe(false);
  });

  it('a counter listed twice is charged for both listings', async () => {
    const { store } = storeWithClock();
    const twice = [perMinute('k', 3), perMinute('k', 3)];
    const first = await store.hit({ counters: twice });
    expect(first.allowed).toBe(true);
    expect(first.counters.map((c) => c.remaining)).toEqual([1, 1]);
    expect((await store.hit({ counters: twice })).allowed).toBe(false);
  });

  it('the same key with different windows is two budgets', async () => {
    const { store } = storeWithClock();
    await store.hit({ counters: [{ key: 'k', limit: 1, windowMs: 1_000 }] });
    expect((await store.hit({ counters: [{ key: 'k', limit: 1, windowMs: MINUTE }] })).allowed).toBe(true);
  });

  it('a request nowMs overrides the store clock', async () => {
    const { store } = storeWithClock();
    await store.hit({ counters: [perMinute('k', 1)], nowMs: T0 });
    expect((await store.hit({ counters: [perMinute('k', 1)], nowMs: T0 + MINUTE - 1 })).allowed).toBe(false);
    expect((await store.hit({ counters: [perMinute('k', 1)], nowMs: T0 + MINUTE })).allowed).toBe(true);
  });

  it('limit 0 denies everything; no counters allows', async () => {
    const { store } = storeWithClock();
    expect((await store.hit({ counters: [perMinute('k', 0)] })).allowed).toBe(false);
    expect(await store.hit({ counters: [] })).toEqual({ allowed: true, counters: [] });
  });

  it('sweeps ended windows as hits go by, without timers', async () => {
    const { store, clock } = storeWithClock();
    for (let i = 0; i < 1_000; i++) await store.hit({ counters: [{ key: `short-${i}`, limit: 5, windowMs: 1_000 }] });
    expect(store.size).toBe(1_000);
    clock.now = T0 + 2_000;
    for (let i = 0; i < 400; i++) await store.hit({ counters: [perMinute('busy')] });
    expect(store.size).toBe(1);
  });

  it('caps the number of keys, evicting the least recently used', async () => {
    const { store } = storeWithClock({ maxKeys: 3 });
    for (const key of ['a', 'b', 'c']) await store.hit({ counters: [perMinute(key, 1)] });
    await store.hit({ counters: [perMinute('a', 1)] }); // denied, but touches "a"
    await store.hit({ counters: [perMinute('d', 1)] }); // evicts "b", the least recently used
    expect(store.size).toBe(3);
    expect(store.evictions).toBe(1);
    expect((await store.hit({ counters: [perMinute('a', 1)] })).allowed).toBe(false);
    expect((await store.hit({ counters: [perMinute('b', 1)] })).allowed).toBe(true);
  });

  it('rejects invalid requests and hits after close', async () => {
    const { store } = storeWithClock();
    await expect(store.hit({ counters: [perMinute('k')], cost: -1 })).rejects.toThrow(TypeError);
    await expect(store.hit({ counters: [perMinute('k')], cost: 1.5 })).rejects.toThrow(TypeError);
    await expect(store.hit({ counters: [{ key: 'k', limit: 1, windowMs: 0 }] })).rejects.toThrow(TypeError);
    await expect(store.hit({ counters: [{ key: 'k', limit: -1, windowMs: 1 }] })).rejects.toThrow(TypeError);
    await store.close();
    await expect(store.hit({ counters: [perMinute('k')] })).rejects.toBeInstanceOf(RateLimitStoreUnavailableError);
  });
});
