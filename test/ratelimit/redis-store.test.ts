import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisRateLimitStore, redisKeyOf, type RedisStoreState } from '../../src/ratelimit/redis-store.js';
import { RateLimitStoreUnavailableError, type HitCounter } from '../../src/ratelimit/store.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

const MINUTE = 60_000;
const T0 = 1_700_000_000_000;
// Generous where the test is about counting, so a loaded machine cannot turn it into a timeout.
const RELAXED = { commandTimeoutMs: 2_000 };

let server: RedisServerHandle;
let admin: Redis;
const stores: RedisRateLimitStore[] = [];
let keySpace = 0;

/** A connected store; each test gets its own key prefix so tests never share counters. */
async function connectedStore(options: Partial<ConstructorParameters<typeof RedisRateLimitStore>[0]> = {}) {
  const store = new RedisRateLimitStore({ url: server.url, keyPrefix: `test-${++keySpace}:`, ...RELAXED, ...options });
  stores.push(store);
  await store.waitUntilUp();
  return store;
}

function perMinute(key: string, limit = 100): HitCounter {
  return { key, limit, windowMs: MINUTE };
}

async function countAllowed(store: RedisRateLimitStore, counters: HitCounter[], attempts: number, nowMs?: number) {
  let allowed = 0;
  for (let i = 0; i < attempts; i++) if ((await store.hit({ counters, nowMs })).allowed) allowed++;
  return allowed;
}

function waitFor(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = (): void => (condition() ? resolve() : void setTimeout(poll, 10));
    poll();
  });
}

beforeAll(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined); // the outage tests stop the server under it
});

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  admin.disconnect();
  await server.close();
});

describe('RedisRateLimitStore counting', () => {
  it('allows 100 per window, denies the 101st, another key passes, after the window it passes again', async () => {
    const store = await connectedStore({ clock: 'caller' });
    const teamA = [perMinute('per-workload/system:serviceaccount:team-a:default')];
    expect(await countAllowed(store, teamA, 100, T0)).toBe(100);

    const denied = await store.hit({ counters: teamA, nowMs: T0 + 15_000 });
    expect(denied.allowed).toBe(false);
    expect(denied.exceededIndex).toBe(0);
    expect(denied.counters[0]).toEqual({ limit: 100, windowMs: MINUTE, remaining: 0, resetMs: 45_000, exceeded: true });

    const teamB = await store.hit({ counters: [perMinute('per-workload/system:serviceaccount:team-b:default')], nowMs: T0 + 15_000 });
    expect(teamB).toMatchObject({ allowed: true, counters: [{ remaining: 99 }] });

    expect((await store.hit({ counters: teamA, nowMs: T0 + MINUTE - 1 })).allowed).toBe(false);
    const fresh = await store.hit({ counters: teamA, nowMs: T0 + MINUTE });
    expect(fresh).toMatchObject({ allowed: true, counters: [{ remaining: 99, resetMs: MINUTE }] });
  });

  it('times windows with the Redis server clock by default', async () => {
    const store = await connectedStore();
    const short = [{ key: 'k', limit: 2, windowMs: 300 }];
    // nowMs is ignored in the default mode: a far-future reading must not open a new window.
    expect(await countAllowed(store, short, 3, T0 + 10 * MINUTE)).toBe(2);
    const denied = await store.hit({ counters: short });
    expect(denied.allowed).toBe(false);
    const resetMs = denied.counters[0]?.resetMs ?? 0;
    expect(resetMs).toBeGreaterThan(0);
    expect(resetMs).toBeLessThanOrEqual(300);
    await new Promise((resolve) => setTimeout(resolve, resetMs + 20));
    expect((await store.hit({ counters: short })).allowed).toBe(true);
  });

  it('a denied multi-rate Check spends nothing on the counters that had room', async () => {
    const store = await connectedStore({ clock: 'caller' });
    const burst: HitCounter = { key: 'team-a', limit: 2, windowMs: 1_000 };
    const sustained: HitCounter = { key: 'team-a', limit: 10, windowMs: MINUTE };
    expect(await countAllowed(store, [burst, sustained], 7, T0)).toBe(2);
    const peek = await store.hit({ counters: [burst, sustained], cost: 0, nowMs: T0 });
    expect(peek.allowed).toBe(false);
    expect(peek.exceededIndex).toBe(0);
    expect(peek.counters.map((c) => [c.exceeded, c.remaining])).toEqual([[true, 0], [false, 8]]);
  });

  it('names the exceeded counter whose window ends last', async () => {
    const store = await connectedStore({ clock: 'caller' });
    const counters = [{ key: 'k', limit: 1, windowMs: 1_000 }, { key: 'k', limit: 1, windowMs: 3_600_000 }];
    await store.hit({ counters, nowMs: T0 });
    const denied = await store.hit({ counters, nowMs: T0 });
    expect(denied.counters.map((c) => c.exceeded)).toEqual([true, true]);
    expect(denied.exceededIndex).toBe(1);
  });

  it('spends `cost` units and denies a cost that no longer fits, without spending it', async () => {
    const store = await connectedStore({ clock: 'caller' });
    const tokens = [{ key: 'tokens', limit: 100, windowMs: MINUTE }];
    expect((await store.hit({ counters: tokens, cost: 60, nowMs: T0 })).counters[0]?.remaining).toBe(40);
    expect(await store.hit({ counters: tokens, cost: 41, nowMs: T0 })).toMatchObject({ allowed: false, counters: [{ remaining: 40 }] });
    expect(await store.hit({ counters: tokens, cost: 40, nowMs: T0 })).toMatchObject({ allowed: true, counters: [{ remaining: 0 }] });
  });

  it('a counter listed twice is charged for both listings', async () => {
    const store = await connectedStore({ clock: 'caller' });
    const twice = [perMinute('k', 3), perMinute('k', 3)];
    const first = await store.hit({ counters: twice, nowMs: T0 });
    expect(first.allowed).toBe(true);
    expect(first.counters.map((c) => c.remaining)).toEqual([1, 1]);
    expect((await store.hit({ counters: twice, nowMs: T0 })).allowed).toBe(false);
  });

  it('stores one hashed, expiring key per counter window and makes one round trip per Check', async () => {
    const store = await connectedStore();
    const prefix = `test-${keySpace}:`;
    const username = 'system:serviceaccount:team-a:default';
    const before = await evalCalls();
    for (let i = 0; i < 10; i++) await store.hit({ counters: [perMinute(username), { key: username, limit: 50, windowMs: 1_000 }] });
    expect((await evalCalls()) - before).toBe(10);

    const keys = (await admin.keys(`${prefix}*`)).sort();
    expect(keys).toEqual([redisKeyOf(username, 1_000, prefix), redisKeyOf(username, MINUTE, prefix)].sort());
    for (const key of keys) expect(key).not.toContain('serviceaccount');
    const ttl = await admin.pttl(redisKeyOf(username, MINUTE, prefix));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(MINUTE);
    expect(await admin.hget(redisKeyOf(username, MINUTE, prefix), 'c')).toBe('10');
  });
});

describe('RedisRateLimitStore across replicas', () => {
  it('300 concurrent Checks of one identity from two stores at limit 100: exactly 100 allowed', async () => {
    const prefix = `shared-${++keySpace}:`;
    const replicaA = await connectedStore({ keyPrefix: prefix });
    const replicaB = await connectedStore({ keyPrefix: prefix });
    const sa = [perMinute('per-workload/system:serviceaccount:team-a:default')];
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? replicaA : replicaB).hit({ counters: sa })),
    );
    expect(results.filter((result) => result.allowed)).toHaveLength(100);
    const fromA = results.filter((result, i) => result.allowed && i % 2 === 0).length;
    expect(fromA).toBeGreaterThan(0);
    expect(fromA).toBeLessThan(100);
  });
});

describe('RedisRateLimitStore when Redis fails', () => {
  it('fails fast while Redis is stopped, reports down once, and resumes counting when it is back', async () => {
    // A password in the URL must never reach an error message.
    const url = server.url.replace('redis://', 'redis://:s3cret-password@');
    const store = await connectedStore({ url, reconnect: { initialDelayMs: 10, maxDelayMs: 40 } });
    const states: RedisStoreState[] = [];
    store.onStateChange((state) => states.push(state));
    const counters = [perMinute('team-a', 100)];
    expect((await store.hit({ counters })).allowed).toBe(true);

    await server.stop();
    await waitFor(() => states.includes('down'));
    const failures = await Promise.allSettled(Array.from({ length: 5 }, () => store.hit({ counters })));
    for (const failure of failures) {
      expect(failure.status).toBe('rejected');
      const reason = (failure as PromiseRejectedResult).reason as unknown;
      expect(reason).toBeInstanceOf(RateLimitStoreUnavailableError);
      expect(String((reason as Error).message)).not.toContain('s3cret');
    }
    // Several reconnect attempts fail meanwhile; the outage is still reported once.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(states).toEqual(['down']);

    await server.start();
    await store.waitUntilUp();
    expect(states).toEqual(['down', 'up']);
    // The restarted server persisted nothing: the budget starts over.
    expect(await store.hit({ counters })).toMatchObject({ allowed: true, counters: [{ remaining: 99 }] });
  });

  it('a connected but unresponsive Redis fails the Check with reason timeout, then recovers', async () => {
    // Any timeout fires while Redis is frozen; this one leaves room to answer on a loaded machine afterwards.
    const store = await connectedStore({ commandTimeoutMs: 300 });
    const states: RedisStoreState[] = [];
    store.onStateChange((state) => states.push(state));
    const counters = [perMinute('team-a')];
    await server.pause();
    try {
      const error = await store.hit({ counters }).then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(RateLimitStoreUnavailableError);
      expect((error as RateLimitStoreUnavailableError).reason).toBe('timeout');
      expect(states).toEqual(['down']);
    } finally {
      await server.resume();
    }
    expect((await store.hit({ counters })).allowed).toBe(true);
    expect(states).toEqual(['down', 'up']);
  });

  it('rejects Checks after close', async () => {
    const store = await connectedStore();
    await store.close();
    const error = await store.hit({ counters: [perMinute('k')] }).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(RateLimitStoreUnavailableError);
    expect((error as RateLimitStoreUnavailableError).reason).toBe('closed');
  });

  it('reports an unreachable Redis at startup without blocking', async () => {
    const store = new RedisRateLimitStore({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
    stores.push(store);
    await expect(store.waitUntilUp(300)).rejects.toBeInstanceOf(RateLimitStoreUnavailableError);
    const error = await store.hit({ counters: [perMinute('k')] }).catch((reason: unknown) => reason);
    expect((error as RateLimitStoreUnavailableError).reason).toBe('not-connected');
  });
});

async function evalCalls(): Promise<number> {
  const stats = await admin.info('commandstats');
  let calls = 0;
  for (const match of stats.matchAll(/cmdstat_(?:eval|evalsha):calls=(\d+)/g)) calls += Number(match[1]);
  return calls;
}
