// The token-budget side of the shared counting store: the same store (and Redis connection) as the rate
// limits, through the rate limiter singleton, so budgets are shared across replicas exactly like limits.
// Every call is bounded in time: a store too slow for the caller's budget counts as unavailable.
import { rateLimiter, type RateLimiter } from '../ratelimit/limiter.js';
import {
  RateLimitStoreUnavailableError,
  type DebitRequest,
  type DebitResult,
  type RateLimitStoreUnavailableReason,
} from '../ratelimit/store.js';
import type { Services } from '../pipeline/services.js';

export type DebitOutcome =
  | { readonly kind: 'answered'; readonly result: DebitResult }
  | { readonly kind: 'unavailable'; readonly reason: RateLimitStoreUnavailableReason; readonly detail: string };

export class BudgetLedger {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly services: Pick<Services, 'metrics'>,
  ) {}

  /** One atomic debit, answered within `budgetMs` (or reported unavailable). */
  async debit(request: Omit<DebitRequest, 'nowMs'>, budgetMs: number): Promise<DebitOutcome> {
    if (budgetMs <= 0) return { kind: 'unavailable', reason: 'timeout', detail: 'no time left for the token-budget store' };
    const store = this.limiter.store;
    // The limiter's clock: the memory store times windows by it (tests move it); Redis uses its own.
    const full: DebitRequest = { ...request, nowMs: this.limiter.now() };
    try {
      const result =
        store.kind === 'memory'
          ? await store.debit(full)
          : await this.services.metrics.timeBackend('redis', () => within(store.debit(full), budgetMs));
      return { kind: 'answered', result };
    } catch (error) {
      if (!(error instanceof RateLimitStoreUnavailableError)) throw error;
      return { kind: 'unavailable', reason: error.reason, detail: error.message };
    }
  }
}

/** The Services' ledger, on the rate limiter's store (created on first use). */
export function budgetLedger(services: Services): BudgetLedger {
  return services.singleton('token-budget-ledger', () => new BudgetLedger(rateLimiter(services), services));
}

function within<T>(promise: Promise<T>, budgetMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RateLimitStoreUnavailableError('timeout', 'no answer in time (the debit may still have been counted)')),
      budgetMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
