// Turns the rates that apply to one request into ONE store call, and the store's answer back into one
// state per rate. A store call has a single `cost`; limits with different costs are expressed by listing a
// budget several times (the stores charge a budget listed k times k × cost, atomically): the call's cost is
// the greatest common divisor of the costs, and a rate of cost c is listed c / gcd times.
import { decidingIndex, type CounterState, type HitCounter, type HitResult } from './store.js';

/** One rate of one applicable limit, for one request. */
export interface PlannedRate {
  /** Quota policy name shown in RateLimit headers. */
  readonly name: string;
  /** The limit it belongs to (for reasons and failure modes). */
  readonly limitName: string;
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
  /** Units this request spends on the rate (≥ 1). */
  readonly cost: number;
}

export interface HitPlan {
  readonly counters: readonly HitCounter[];
  readonly cost: number;
  /** For each planned rate, its first listing in `counters` and how many listings it has. */
  readonly listings: ReadonlyArray<{ readonly first: number; readonly count: number }>;
}

/** A store call stays small: mixed costs that would need more listings than this are refused. */
export const MAX_LISTINGS = 256;

export class HitPlanError extends Error {
  override readonly name = 'HitPlanError';
}

export function planHit(rates: readonly PlannedRate[]): HitPlan {
  const cost = rates.reduce((divisor, rate) => gcd(divisor, rate.cost), 0);
  const counters: HitCounter[] = [];
  const listings: Array<{ first: number; count: number }> = [];
  for (const rate of rates) {
    const count = rate.cost / cost;
    if (counters.length + count > MAX_LISTINGS) {
      throw new HitPlanError(
        `the costs of the limits that apply (${rates.map((r) => r.cost).join(', ')}) are too different to check in one step`,
      );
    }
    listings.push({ first: counters.length, count });
    const counter: HitCounter = { key: rate.key, limit: rate.limit, windowMs: rate.windowMs };
    for (let i = 0; i < count; i++) counters.push(counter);
  }
  return { counters, cost, listings };
}

/** The store's answer folded back to one state per planned rate, and the rate that decides Retry-After. */
export function foldHitResult(plan: HitPlan, result: HitResult): { states: CounterState[]; deciding: number } {
  const states = plan.listings.map(({ first, count }) => {
    const listed = result.counters.slice(first, first + count);
    // Every listing of one budget reports the same count and window end; any of them may be the one over.
    const last = listed[listed.length - 1] as CounterState;
    return { ...last, exceeded: listed.some((state) => state.exceeded) };
  });
  return { states, deciding: result.allowed ? -1 : decidingIndex(states) };
}

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}
