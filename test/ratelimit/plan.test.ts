import { describe, expect, it } from 'vitest';
import { foldHitResult, HitPlanError, MAX_LISTINGS, planHit, type PlannedRate } from '../../src/ratelimit/plan.js';
import { MemoryRateLimitStore } from '../../src/ratelimit/memory-store.js';

const T0 = 1_700_000_000_000;

function rate(name: string, limit: number, cost: number, windowMs = 60_000): PlannedRate {
  return { name, limitName: name, key: `key-${name}`, limit, windowMs, cost };
}

describe('planHit', () => {
  it('one listing per rate when every cost is the same', () => {
    const plan = planHit([rate('a', 10, 3), rate('b', 20, 3)]);
    expect(plan.cost).toBe(3);
    expect(plan.counters.map((c) => c.key)).toEqual(['key-a', 'key-b']);
    expect(plan.listings).toEqual([{ first: 0, count: 1 }, { first: 1, count: 1 }]);
  });

  it('mixed costs: the gcd is the call cost and each rate is listed cost / gcd times', () => {
    const plan = planHit([rate('a', 10, 2), rate('b', 20, 6)]);
    expect(plan.cost).toBe(2);
    expect(plan.counters.map((c) => c.key)).toEqual(['key-a', 'key-b', 'key-b', 'key-b']);
    expect(plan.listings).toEqual([{ first: 0, count: 1 }, { first: 1, count: 3 }]);
  });

  it('refuses costs that would need more than MAX_LISTINGS listings', () => {
    expect(() => planHit([rate('a', 10, 1), rate('b', 10_000, MAX_LISTINGS)])).toThrow(HitPlanError);
  });

  it('mixed costs are charged per rate and atomically by a real store', async () => {
    const store = new MemoryRateLimitStore();
    const rates = [rate('requests', 100, 1), rate('tokens', 10, 4)];
    const plan = planHit(rates);
    const spend = async () => foldHitResult(plan, await store.hit({ counters: plan.counters, cost: plan.cost, nowMs: T0 }));
    const first = await spend();
    expect(first.states.map((s) => s.remaining)).toEqual([99, 6]);
    expect((await spend()).states.map((s) => s.remaining)).toEqual([98, 2]);
    // tokens has 2 left, the request needs 4: denied, and the requests budget is not charged either.
    const denied = await spend();
    expect(denied.states.map((s) => [s.remaining, s.exceeded])).toEqual([[98, false], [2, true]]);
    expect(denied.deciding).toBe(1);
  });
});
