// Token budgets are debited through the rate limiter (src/ratelimit/limiter.ts): the same store and Redis
// connection as the rate limits, so budgets are shared across replicas exactly like limits, and every call is
// bounded in time the same way.
import { rateLimiter, type RateLimiter } from '../ratelimit/limiter.js';
import type { Services } from '../pipeline/services.js';

export type { DebitOutcome } from '../ratelimit/limiter.js';

/** What the token-budget stage and the ext_proc service debit through. */
export type BudgetLedger = Pick<RateLimiter, 'debit'>;

/** The Services' ledger: the rate limiter's store (created on first use). */
export function budgetLedger(services: Services): BudgetLedger {
  return rateLimiter(services);
}
