// The rate-limit stage: runs after identity and authorization (denied requests spend nothing), evaluates
// which limits apply and whose budget they spend, and asks the store once for all of them.
//   all have room  → allow, with RateLimit / RateLimit-Policy response headers for the workload
//   one is over    → 429 with Retry-After, RateLimit-Policy, RateLimit and {"error":"rate_limited",...}
//   store down     → per limit failureMode: `allow` lets the request through uncounted, `deny` answers 503
//   CEL error      → policy failurePolicy: Fail denies 403, Ignore skips the limit
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext, Stage } from '../pipeline/context.js';
import { allow, allowWith, deny, type Decision } from '../pipeline/decision.js';
import { evalAll, type FailurePolicy } from '../pipeline/section.js';
import type { Metrics } from '../observability/metrics.js';
import { counterKeyPrefix, counterKeyWith } from './counter-key.js';
import { rateLimitHeaders, ceilSeconds, type RateLimitItem } from './headers.js';
import type { HitOutcome, RateLimiter } from './limiter.js';
import { andThen, type MaybePromise } from '../pipeline/maybe-async.js';
import { foldHitResult, planHit, type HitPlan, type PlannedRate } from './plan.js';
import { formatWindow } from './store.js';

export type FailureMode = 'allow' | 'deny';

export interface CompiledRate {
  readonly limit: number;
  readonly windowMs: number;
}

export interface CompiledLimit {
  readonly name: string;
  readonly rates: readonly CompiledRate[];
  readonly counters: readonly CelProgram[];
  readonly when: readonly CelProgram[];
  readonly failureMode: FailureMode;
  /** Units a request spends: a constant, or a CEL int evaluated per request (0: the limit does not apply). */
  readonly cost: number | CelProgram;
}

export interface RateLimitStageOptions {
  readonly policy: string;
  /** What counter keys are scoped by (SectionContext.scope). */
  readonly scope: string;
  readonly failurePolicy: FailurePolicy;
  readonly limits: readonly CompiledLimit[];
  readonly limiter: RateLimiter;
  readonly metrics: Metrics;
}

/** Largest cost one request may spend on a limit. */
export const MAX_COST = 1_000_000_000;

class LimitEvaluationError extends Error {}

/** What a limit's planned rates share on every request, computed once per compiled policy. */
interface PreparedLimit {
  readonly limit: CompiledLimit;
  readonly keyPrefix: string;
  /** Quota policy name of each rate: the limit's name, or "<limit>/<window>" when it has several. */
  readonly rateNames: readonly string[];
}

export function createRateLimitStage(options: RateLimitStageOptions): Stage {
  const { policy, scope, failurePolicy, metrics } = options;
  const limiter = options.limiter;
  const limits: readonly PreparedLimit[] = options.limits.map((limit) => ({
    limit,
    keyPrefix: counterKeyPrefix(scope, limit.name),
    rateNames: limit.rates.map((rate) => (limit.rates.length > 1 ? `${limit.name}/${formatWindow(rate.windowMs)}` : limit.name)),
  }));
  const failed = (ctx: CheckContext, what: string, message: string) =>
    evaluationFailed(ctx, { policy, failurePolicy, metrics }, what, message);

  return {
    evaluator: 'ratelimit',
    name: 'rate limits',
    run(ctx: CheckContext): MaybePromise<Decision | undefined> {
      // 1. Which limits apply, what each costs, and which budget each spends from.
      const rates: PlannedRate[] = [];
      const modes = new Map<string, FailureMode>();
      for (const prepared of limits) {
        const limit = prepared.limit;
        let planned: PlannedRate[];
        try {
          planned = planLimit(prepared, ctx);
        } catch (error) {
          const decision = failed(ctx, `rate limit "${limit.name}"`, messageOf(error));
          if (decision) return decision;
          continue;
        }
        if (planned.length === 0) continue;
        for (const rate of planned) rates.push(rate);
        modes.set(limit.name, limit.failureMode);
      }
      if (rates.length === 0) return undefined;

      let plan: HitPlan;
      try {
        plan = planHit(rates);
      } catch (error) {
        return failed(ctx, 'rate limits', messageOf(error));
      }

      // 2. One store call for all of them (synchronous with the memory store).
      const t0 = performance.now();
      const outcome = limiter.hit({ counters: plan.counters, cost: plan.cost }, ctx.deadline);
      return andThen(outcome, (o) => decide(ctx, rates, modes, plan, o, performance.now() - t0));
    },
  };

  /** 3. Allowed with the budget left, 429 naming what is exhausted, or the failure modes when the store is out. */
  function decide(
    ctx: CheckContext,
    rates: readonly PlannedRate[],
    modes: ReadonlyMap<string, FailureMode>,
    plan: HitPlan,
    outcome: HitOutcome,
    durationMs: number,
  ): Decision {
    const trace = (result: string): void => ctx.addTrace({ evaluator: 'ratelimit', name: 'rate limits', result, durationMs });
    if (outcome.kind === 'unavailable') {
      if (ctx.trace) trace(`store unavailable (${outcome.reason})`);
      return storeUnavailable(policy, outcome.reason, modes, limiter);
    }
    const { states, deciding } = foldHitResult(plan, outcome.result);
    const items: RateLimitItem[] = rates.map((rate, index) => ({
      name: rate.name,
      limit: rate.limit,
      windowMs: rate.windowMs,
      remaining: states[index]!.remaining,
      resetMs: states[index]!.resetMs,
    }));
    if (outcome.result.allowed) {
      if (ctx.trace) trace(`allowed: ${describe(items)}`);
      const decision = allow(policy, 'ratelimit', 'within rate limits');
      return allowWith(decision, { responseHeadersToAdd: rateLimitHeaders(items, { action: 'append' }) });
    }
    if (ctx.trace) trace(`denied by "${rates[deciding]!.name}": ${describe(items)}`);
    const over = rates.filter((_, index) => states[index]!.exceeded);
    const retryAfterMs = states[deciding]!.resetMs;
    const limitNames = quoteList([...new Set(over.map((rate) => rate.limitName))]);
    const exhausted = over.map((rate) => `${rate.limit} per ${formatWindow(rate.windowMs)}`).join(', ');
    const reason = `rate limit ${limitNames} exceeded (${exhausted}); retry in ${ceilSeconds(retryAfterMs)} s`;
    return deny(policy, 'ratelimit', 429, reason, { headers: rateLimitHeaders(items, { retryAfterMs, action: 'overwrite' }) });
  }
}

/** The store could not answer: 503 when any applicable limit fails closed, else through uncounted. */
function storeUnavailable(
  policy: string,
  reason: string,
  modes: ReadonlyMap<string, FailureMode>,
  limiter: RateLimiter,
): Decision {
  const failClosed = [...modes].filter(([, mode]) => mode === 'deny').map(([name]) => name);
  if (failClosed.length === 0) {
    limiter.recordFailure('allow');
    return allow(policy, 'ratelimit', `rate-limit store unavailable (${reason}); limits not enforced (failureMode allow)`);
  }
  limiter.recordFailure('deny');
  const verb = failClosed.length === 1 ? 'has' : 'have';
  return deny(policy, 'ratelimit', 503, `rate-limit store unavailable (${reason}); ${quoteList(failClosed)} ${verb} failureMode deny`);
}

/** The rates of one limit for this request: none when its `when` is false or its cost is 0. Throws on CEL errors. */
/**
 * A counter or budget expression that cannot be evaluated: under Ignore the limit is skipped (counted here as
 * an evaluator error), under Fail the request is denied 403 (counted by the stage observer from the flag).
 */
export function evaluationFailed(
  ctx: CheckContext,
  on: { policy: string; failurePolicy: FailurePolicy; metrics: Metrics },
  what: string,
  message: string,
): Decision | undefined {
  ctx.addTrace({ evaluator: 'ratelimit', name: what, result: `error: ${message}`, durationMs: 0 });
  if (on.failurePolicy === 'Ignore') {
    on.metrics.evaluatorErrors.inc({ evaluator: 'ratelimit' });
    return undefined;
  }
  return deny(on.policy, 'ratelimit', 403, `${what} could not be evaluated: ${message}`, { evaluationError: true });
}

function planLimit({ limit, keyPrefix, rateNames }: PreparedLimit, ctx: CheckContext): PlannedRate[] {
  if (limit.when.length > 0 && !evalAll(limit.when, ctx.activation)) {
    if (ctx.trace) ctx.addTrace({ evaluator: 'ratelimit', name: `rate limit "${limit.name}"`, result: 'skipped (when)', durationMs: 0 });
    return [];
  }
  const cost = costOf(limit, ctx);
  if (cost === 0) return [];
  const key = counterKeyWith(
    keyPrefix,
    limit.counters.map((counter) => counter.evaluate(ctx.activation)),
  );
  return limit.rates.map((rate, index) => ({
    name: rateNames[index]!,
    limitName: limit.name,
    key,
    limit: rate.limit,
    windowMs: rate.windowMs,
    cost,
  }));
}

function costOf(limit: CompiledLimit, ctx: CheckContext): number {
  if (typeof limit.cost === 'number') return limit.cost;
  const value = limit.cost.evaluate(ctx.activation);
  const cost = typeof value === 'bigint' ? Number(value) : value;
  if (typeof cost !== 'number' || !Number.isSafeInteger(cost) || cost < 0 || cost > MAX_COST) {
    const shown = typeof value === 'bigint' || typeof value === 'number' ? String(value) : typeof value;
    throw new LimitEvaluationError(`cost must be an integer from 0 to ${MAX_COST}, got ${shown}`);
  }
  return cost;
}

/** First line only: CEL messages continue with a source excerpt that may echo request values. */
function messageOf(error: unknown): string {
  return celErrorMessage(error);
}

export function quoteList(names: readonly string[]): string {
  return names.map((name) => `"${name}"`).join(', ');
}

/** `name r/q left, resets in t s; ...` for reasons and traces. */
export function describe(items: readonly RateLimitItem[]): string {
  return items
    .map((item) => `${item.name} ${item.remaining}/${item.limit} left, resets in ${ceilSeconds(item.resetMs)} s`)
    .join('; ');
}
