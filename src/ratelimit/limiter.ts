// The process-wide rate limiter: one counting store per Services (Redis when --redis-url is set, else
// memory), shared by every compiled policy so a policy reload keeps its counters. It bounds each store
// call by the Check's deadline and reports store outages once per outage, not once per request.
import type { Logger } from 'pino';
import type { Services } from '../pipeline/services.js';
import type { MaybePromise } from '../pipeline/maybe-async.js';
import { MemoryRateLimitStore } from './memory-store.js';
import { RedisRateLimitStore, type RedisStoreState } from './redis-store.js';
import {
  RateLimitStoreUnavailableError,
  type DebitRequest,
  type DebitResult,
  type HitRequest,
  type HitResult,
  type RateLimitStore,
  type RateLimitStoreUnavailableReason,
} from './store.js';

const SINGLETON_KEY = 'ratelimit-limiter';
/** Time kept back from the Check's deadline so a slow store still leaves room to answer. */
const DEADLINE_MARGIN_MS = 5;
/** Redis replying with errors (OOM, NOPERM) does not change the connection state: log it at most this often. */
const ERROR_LOG_INTERVAL_MS = 60_000;
/** How long start-up (readiness) waits for the first Redis connection. */
const STARTUP_WAIT_MS = 2_000;

/** A store call's answer, or why there is none (the callers' failure modes decide what that means). */
export type StoreOutcome<R> =
  | { readonly kind: 'answered'; readonly result: R }
  | { readonly kind: 'unavailable'; readonly reason: RateLimitStoreUnavailableReason; readonly detail: string };

export type HitOutcome = StoreOutcome<HitResult>;
/** Token budgets (src/budget) debit through the same limiter, store and Redis connection as rate limits. */
export type DebitOutcome = StoreOutcome<DebitResult>;

export class RateLimiter {
  /**
   * The clock windows are timed with (ms since the epoch). Only the memory store uses it; the Redis store
   * times windows by the Redis server's clock. Tests replace it to move time instead of sleeping.
   */
  now: () => number = Date.now;
  private lastErrorLogMs = Number.NEGATIVE_INFINITY;

  constructor(
    readonly store: RateLimitStore,
    private readonly services: Pick<Services, 'logger' | 'metrics'>,
  ) {}

  /**
   * One atomic store call, answered before `deadline` (epoch ms): a store too slow for it counts as
   * unavailable. An in-process store answers synchronously; Redis with a promise.
   */
  hit(request: Omit<HitRequest, 'nowMs'>, deadline: number): MaybePromise<HitOutcome> {
    const budgetMs = deadline - Date.now() - DEADLINE_MARGIN_MS;
    if (budgetMs <= 0) return { kind: 'unavailable', reason: 'timeout', detail: 'no time left before the Check deadline' };
    const full: HitRequest = { counters: request.counters, cost: request.cost, nowMs: this.now() };
    const store = this.store;
    if (store.hitNow) {
      try {
        return { kind: 'answered', result: store.hitNow(full) };
      } catch (error) {
        return this.unavailable(error);
      }
    }
    return this.services.metrics.timeBackend('redis', () => withinBudget(store.hit(full), budgetMs)).then(
      (result): HitOutcome => ({ kind: 'answered', result }),
      (error: unknown) => this.unavailable(error),
    );
  }

  /** One atomic token-budget debit, answered within `budgetMs` (a store too slow for it counts as unavailable). */
  debit(request: Omit<DebitRequest, 'nowMs'>, budgetMs: number): Promise<DebitOutcome> {
    if (budgetMs <= 0) return Promise.resolve({ kind: 'unavailable', reason: 'timeout', detail: 'no time left for the token-budget store' });
    const full: DebitRequest = { ...request, nowMs: this.now() };
    const store = this.store;
    const answer = store.kind === 'memory' ? store.debit(full) : this.services.metrics.timeBackend('redis', () => withinBudget(store.debit(full), budgetMs));
    return answer.then(
      (result): DebitOutcome => ({ kind: 'answered', result }),
      (error: unknown) => this.unavailable(error),
    );
  }

  /** A store failure → the callers' failure modes; anything else is a bug and propagates. */
  private unavailable(error: unknown): StoreOutcome<never> {
    if (!(error instanceof RateLimitStoreUnavailableError)) throw error;
    if (error.reason === 'error') this.logStoreError(error.message);
    return { kind: 'unavailable', reason: error.reason, detail: error.message };
  }

  /** Counts a Check the store could not answer, by the failure mode that decided it. */
  recordFailure(mode: 'allow' | 'deny'): void {
    this.services.metrics.ratelimitStoreFailures.inc({ mode });
  }

  private logStoreError(message: string): void {
    const now = Date.now();
    if (now - this.lastErrorLogMs < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLogMs = now;
    this.services.logger.warn({ store: this.store.kind, error: message }, 'rate-limit store failed a Check; failure modes apply');
  }
}

/** The Services' rate limiter, created on first use (when the first policy with limits loads). */
export function rateLimiter(services: Services): RateLimiter {
  return services.singleton(
    SINGLETON_KEY,
    () => new RateLimiter(createStore(services), services),
    (limiter) => limiter.store.close(),
  );
}

/**
 * Redis command timeout: a third of the Check deadline, at least 10 ms — 50 ms with the default 150 ms
 * deadline (Envoy waits 200 ms). The rest of the deadline is left to identity, metadata and answering.
 */
export function redisCommandTimeoutMs(checkDeadlineMs: number): number {
  return Math.max(10, Math.floor(checkDeadlineMs / 3));
}

function createStore(services: Services): RateLimitStore {
  const url = services.config.redisUrl;
  if (!url) return new MemoryRateLimitStore();
  const store = new RedisRateLimitStore({ url, commandTimeoutMs: redisCommandTimeoutMs(services.config.checkDeadlineMs) });
  reportOutages(store, services.logger);
  // Readiness waits briefly for the first connection; a Redis still down after that is the failure modes' job.
  services.warmUp(() => store.waitUntilUp(STARTUP_WAIT_MS));
  return store;
}

/** One warning when Redis goes away, one info line when it is back (the URL is never logged). */
function reportOutages(store: RedisRateLimitStore, logger: Logger): void {
  let downSince: number | undefined;
  store.onStateChange((state: RedisStoreState) => {
    if (state === 'down') {
      downSince = Date.now();
      logger.warn(
        { store: 'redis' },
        'rate-limit store unreachable: limits apply their failureMode (allow or deny) until it is back',
      );
    } else {
      const outageMs = downSince === undefined ? undefined : Date.now() - downSince;
      downSince = undefined;
      logger.info({ store: 'redis', outageMs }, 'rate-limit store reachable: counting');
    }
  });
}

function withinBudget<T>(promise: Promise<T>, budgetMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const detail = 'no answer in time (the call may still have been counted)';
    timer = setTimeout(() => reject(new RateLimitStoreUnavailableError('timeout', detail)), budgetMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
