// What one response costs each budget of its grant, once its usage is known (or known to be unknown).
// The rules (docs/token-budgets.md, "What is debited"):
//   usage read             each budget is charged its count (input, output or input+output) of the usage
//                          seen; a reservation made at Check is released (replaced by the real count)
//   usage unknown, fallback  each budget is charged the fallback for its count; reservations released
//   usage unknown, no fallback  nothing more is charged; a reservation stays charged as the estimate
//   error status (≥ 400) without usage  nothing is charged; reservations released
import type { DebitCounter } from '../ratelimit/store.js';
import type { NoUsageReason, UsageReading } from '../extproc/usage/response-reader.js';
import type { TokenUsage } from '../extproc/usage/types.js';
import type { BudgetCount, BudgetGrant, GrantedBudget } from './grant.js';

export type SettlementOutcome = 'usage' | 'partial' | 'fallback' | 'none';
export type SettlementReason = NoUsageReason | 'cancelled' | 'no-response' | 'error-status';

export interface ResolvedUsage {
  readonly input: number | undefined;
  readonly output: number | undefined;
  readonly total: number | undefined;
}

export interface Settlement {
  readonly outcome: SettlementOutcome;
  /** Why no usage was read (absent for outcome `usage`/`partial`). */
  readonly reason?: SettlementReason;
  readonly usage?: ResolvedUsage;
  /** The store call: budgets with nothing to charge or release are left out (may be empty). */
  readonly counters: readonly DebitCounter[];
  /** Tokens the provider reported, by kind (for metrics: once per response, not per budget); 0 when unknown. */
  readonly reported: { readonly input: number; readonly output: number };
}

export interface ResponseEnd {
  /** What the body said, or undefined when no response (headers) arrived. */
  readonly reading: UsageReading | undefined;
  /** True when the body reached its end; false when the stream was cancelled or ended early. */
  readonly complete: boolean;
  /** The upstream's HTTP status, when response headers arrived. */
  readonly status?: number;
}

/** Fills counts the provider left out from the others (total = input + output, and back). */
export function resolveUsage(usage: TokenUsage): ResolvedUsage {
  let { input, output, total } = usage;
  if (total === undefined && input !== undefined && output !== undefined) total = input + output;
  if (input === undefined && total !== undefined && output !== undefined) input = Math.max(0, total - output);
  if (output === undefined && total !== undefined && input !== undefined) output = Math.max(0, total - input);
  return { input, output, total };
}

export function settle(grant: BudgetGrant, end: ResponseEnd): Settlement {
  const usage = end.reading?.usage;
  if (usage !== undefined) {
    const resolved = resolveUsage(usage);
    const fallback = grant.fallback;
    // A count the provider did not report (after deriving it from the others) is charged as the fallback.
    const input = resolved.input ?? fallback?.input ?? 0;
    const output = resolved.output ?? fallback?.output ?? 0;
    const costOf = (count: BudgetCount): number =>
      count === 'input' ? input : count === 'output' ? output : resolved.total ?? input + output;
    return {
      outcome: end.complete ? 'usage' : 'partial',
      usage: resolved,
      counters: debits(grant.budgets, costOf),
      reported: { input: resolved.input ?? 0, output: resolved.output ?? 0 },
    };
  }

  const reason: SettlementReason =
    end.reading === undefined ? 'no-response' : !end.complete && end.reading.reason === 'no-usage' ? 'cancelled' : end.reading.reason ?? 'no-usage';
  if (end.status !== undefined && end.status >= 400) {
    return { outcome: 'none', reason: 'error-status', counters: debits(grant.budgets, () => 0), reported: NONE };
  }
  const fallback = grant.fallback;
  if (fallback === undefined) {
    return { outcome: 'fallback', reason, counters: [], reported: NONE };
  }
  return { outcome: 'fallback', reason, counters: debits(grant.budgets, (count) => fallback[count]), reported: NONE };
}

const NONE = { input: 0, output: 0 } as const;

/** Every budget's charge, and the release of its reservation (the real count, or the fallback, replaces it). */
function debits(budgets: readonly GrantedBudget[], costOf: (count: BudgetCount) => number): DebitCounter[] {
  const counters: DebitCounter[] = [];
  for (const budget of budgets) {
    const cost = costOf(budget.count);
    const release =
      budget.reserved > 0 && budget.windowStartMs !== undefined
        ? { units: budget.reserved, windowStartMs: budget.windowStartMs }
        : undefined;
    if (cost === 0 && release === undefined) continue;
    counters.push({
      key: budget.key,
      limit: budget.limit,
      windowMs: budget.windowMs,
      cost,
      ...(release !== undefined ? { release } : {}),
    });
  }
  return counters;
}
