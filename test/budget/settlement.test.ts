import { describe, expect, it } from 'vitest';
import { resolveUsage, settle } from '../../src/budget/settlement.js';
import type { BudgetGrant, GrantedBudget } from '../../src/budget/grant.js';

const KEY = 'a'.repeat(64);

function budget(name: string, count: GrantedBudget['count'], reserved = 0): GrantedBudget {
  return { name, key: KEY, limit: 1000, windowMs: 60_000, count, reserved, ...(reserved > 0 ? { windowStartMs: 1000 } : {}) };
}

const budgets = [budget('in', 'input'), budget('out', 'output', 300), budget('all', 'total', 300)];
const grant = (fallback?: BudgetGrant['fallback']): BudgetGrant => ({ policy: 'p', provider: 'auto', budgets, ...(fallback ? { fallback } : {}) });
const reading = (usage: { input?: number; output?: number; total?: number } | undefined) =>
  usage ? { usage, provider: 'openai' as const, kind: 'json' as const } : { usage: undefined, provider: undefined, kind: 'json' as const, reason: 'no-usage' as const };

function costs(s: ReturnType<typeof settle>) {
  return s.counters.map((c) => [c.cost, c.release?.units ?? 0]);
}

describe('settle', () => {
  it('usage read: each budget its count; reservations released', () => {
    const s = settle(grant(), { reading: reading({ input: 10, output: 20, total: 30 }), complete: true });
    expect(s.outcome).toBe('usage');
    expect(costs(s)).toEqual([[10, 0], [20, 300], [30, 300]]);
    expect(s.reported).toEqual({ input: 10, output: 20 });
  });

  it('usage of a stream cut short is "partial" and charged the same way', () => {
    const s = settle(grant(), { reading: reading({ input: 10, output: 1 }), complete: false });
    expect(s.outcome).toBe('partial');
    expect(costs(s)).toEqual([[10, 0], [1, 300], [11, 300]]);
  });

  it('a count the provider left out is charged as the fallback', () => {
    const s = settle(grant({ input: 7, output: 9, total: 16 }), { reading: reading({ input: 10 }), complete: false });
    expect(costs(s)).toEqual([[10, 0], [9, 300], [19, 300]]);
  });

  it('no usage, no fallback: nothing more, reservations stay', () => {
    const s = settle(grant(), { reading: reading(undefined), complete: true });
    expect(s).toMatchObject({ outcome: 'fallback', reason: 'no-usage', counters: [] });
  });

  it('no usage with a fallback: the fallback per count, reservations released', () => {
    const s = settle(grant({ input: 5, output: 6, total: 11 }), { reading: reading(undefined), complete: true });
    expect(costs(s)).toEqual([[5, 0], [6, 300], [11, 300]]);
  });

  it('a stream cancelled before any usage is reason "cancelled"; no response at all is "no-response"', () => {
    expect(settle(grant({ input: 1, output: 1, total: 1 }), { reading: reading(undefined), complete: false }).reason).toBe('cancelled');
    expect(settle(grant({ input: 1, output: 1, total: 1 }), { reading: undefined, complete: false }).reason).toBe('no-response');
  });

  it('an error status without usage charges nothing and releases reservations', () => {
    const s = settle(grant({ input: 5, output: 6, total: 11 }), { reading: reading(undefined), complete: true, status: 503 });
    expect(s.outcome).toBe('none');
    expect(costs(s)).toEqual([[0, 300], [0, 300]]);
  });

  it('resolveUsage derives the missing count from the other two', () => {
    expect(resolveUsage({ input: 3, output: 4 })).toEqual({ input: 3, output: 4, total: 7 });
    expect(resolveUsage({ total: 10, output: 4 })).toEqual({ input: 6, output: 4, total: 10 });
    expect(resolveUsage({ total: 10, input: 4 })).toEqual({ input: 4, output: 6, total: 10 });
    expect(resolveUsage({ total: 10 })).toEqual({ input: undefined, output: undefined, total: 10 });
  });
});
