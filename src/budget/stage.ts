// The token-budget stage of a Check: runs after rate limits. It picks the budgets that apply and whose
// counters they use, asks the store whether each still has room (reserving an estimate when the policy
// says so), and then:
//   all have room  → allow, with the grant (budgets + caller) in dynamic metadata for ext_proc to debit
//   one is spent   → 429 with Retry-After and RateLimit headers, {"error":"rate_limited",...}
//   store down     → per budget failureMode: `allow` lets the request through (the grant still goes out,
//                    so its usage is debited when the store is back), `deny` answers 503
//   CEL error      → policy failurePolicy: Fail denies 403, Ignore skips the budget
import { celErrorMessage, type CelProgram } from '../cel/compile.js';
import type { CheckContext, Stage } from '../pipeline/context.js';
import { allow, deny, type Decision } from '../pipeline/decision.js';
import { evalAll, type FailurePolicy } from '../pipeline/section.js';
import type { Metrics } from '../observability/metrics.js';
import { counterKeyPrefix, counterKeyWith } from '../ratelimit/counter-key.js';
import { ceilSeconds, rateLimitHeaders, type RateLimitItem } from '../ratelimit/headers.js';
import { formatWindow, type DebitCounter } from '../ratelimit/store.js';
import { describe, evaluationFailed, quoteList, type FailureMode } from '../ratelimit/stage.js';
import type { ProviderChoice } from '../extproc/usage/response-reader.js';
import { budgetKeyDigest, grantToMetadata, GRANT_METADATA_KEY, type BudgetCount, type BudgetGrant, type FallbackCost, type GrantedBudget } from './grant.js';
import type { BudgetLedger } from './ledger.js';
import type { BudgetMetrics } from './metrics.js';
import { requestedMaxTokens } from './request-estimate.js';

export type { FailureMode } from '../ratelimit/stage.js';

export interface CompiledBudget {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly count: BudgetCount;
  readonly counters: readonly CelProgram[];
  readonly when: readonly CelProgram[];
  readonly failureMode: FailureMode;
}

export interface Reservation {
  /** Tokens reserved when the request body does not say how many it may produce. */
  readonly defaultTokens: number;
  /** Upper bound on a reservation, whatever the request asks for. */
  readonly maxTokens?: number;
}

export interface TokenBudgetStageOptions {
  readonly policy: string;
  /** What budget keys are scoped by (SectionContext.scope). */
  readonly scope: string;
  readonly failurePolicy: FailurePolicy;
  readonly provider: ProviderChoice;
  readonly fallback?: FallbackCost;
  readonly reservation?: Reservation;
  readonly budgets: readonly CompiledBudget[];
  readonly ledger: () => BudgetLedger;
  readonly metrics: Metrics;
  readonly budgetMetrics: () => BudgetMetrics;
}

/** Time kept back from the Check's deadline so a slow store still leaves room to answer. */
const DEADLINE_MARGIN_MS = 5;

interface PlannedBudget {
  readonly budget: CompiledBudget;
  readonly key: string;
}

export function createTokenBudgetStage(options: TokenBudgetStageOptions): Stage {
  const { policy, scope, failurePolicy, budgets, metrics } = options;
  // A prefix no rate-limit key starts with (those start with a quote), so budgets and limits never share a
  // counter even with equal names; the part fixed by the policy and the budget is built once.
  const keyPrefixes = budgets.map((budget) => `tokens\u0000${counterKeyPrefix(scope, budget.name)}`);
  const failed = (ctx: CheckContext, what: string, message: string) =>
    evaluationFailed(ctx, { policy, failurePolicy, metrics }, what, message);

  return {
    evaluator: 'ratelimit',
    name: 'token budgets',
    async run(ctx: CheckContext): Promise<Decision | undefined> {
      // 1. The budgets that apply and the counter each spends from.
      const planned: PlannedBudget[] = [];
      for (let index = 0; index < budgets.length; index++) {
        const budget = budgets[index]!;
        try {
          if (budget.when.length > 0 && !evalAll(budget.when, ctx.activation)) continue;
          const values = budget.counters.map((counter) => counter.evaluate(ctx.activation));
          planned.push({ budget, key: budgetKeyDigest(counterKeyWith(keyPrefixes[index]!, values)) });
        } catch (error) {
          const decision = failed(ctx, `token budget "${budget.name}"`, celErrorMessage(error));
          if (decision) return decision;
        }
      }
      if (planned.length === 0) return undefined;

      // 2. One store call: room left in every budget, with the reservation spent when configured.
      const reserve = reservationFor(options.reservation, ctx.view.body);
      const counters: DebitCounter[] = planned.map(({ budget, key }) => ({
        key,
        limit: budget.limit,
        windowMs: budget.windowMs,
        // Capped at the limit: a reservation larger than the whole budget could never pass.
        cost: budget.count === 'input' ? 0 : Math.min(reserve, budget.limit),
      }));
      const t0 = performance.now();
      const outcome = await options.ledger().debit({ counters, ifRoom: true }, ctx.deadline - Date.now() - DEADLINE_MARGIN_MS);
      const durationMs = performance.now() - t0;

      const grantOf = (windowStarts?: ReadonlyArray<number | undefined>): BudgetGrant => ({
        policy,
        ...(ctx.identityLabel !== undefined ? { identity: ctx.identityLabel } : {}),
        provider: options.provider,
        ...(options.fallback !== undefined ? { fallback: options.fallback } : {}),
        budgets: planned.map(({ budget, key }, index): GrantedBudget => {
          const reserved = windowStarts ? (counters[index] as DebitCounter).cost : 0;
          const windowStartMs = windowStarts?.[index];
          return {
            name: budget.name,
            key,
            limit: budget.limit,
            windowMs: budget.windowMs,
            count: budget.count,
            reserved: reserved > 0 && windowStartMs !== undefined ? reserved : 0,
            ...(reserved > 0 && windowStartMs !== undefined ? { windowStartMs } : {}),
          };
        }),
      });
      const granted = (reason: string, grant: BudgetGrant): Decision => ({
        ...allow(policy, 'ratelimit', reason),
        dynamicMetadata: { [GRANT_METADATA_KEY]: grantToMetadata(grant) },
      });

      if (outcome.kind === 'unavailable') {
        options.budgetMetrics().storeFailures.inc({ stage: 'check', reason: outcome.reason });
        ctx.addTrace({ evaluator: 'ratelimit', name: 'token budgets', result: `store unavailable (${outcome.reason})`, durationMs });
        const failClosed = planned.filter(({ budget }) => budget.failureMode === 'deny').map(({ budget }) => budget.name);
        if (failClosed.length > 0) {
          return deny(policy, 'ratelimit', 503, `token-budget store unavailable (${outcome.reason}); ${quoteList(failClosed)} fail closed (failureMode deny)`);
        }
        return granted(`token-budget store unavailable (${outcome.reason}); budgets not enforced (failureMode allow)`, grantOf());
      }

      const states = outcome.result.counters;
      const items: RateLimitItem[] = planned.map(({ budget }, index) => ({
        name: budget.name,
        limit: budget.limit,
        windowMs: budget.windowMs,
        remaining: states[index]?.remaining ?? 0,
        resetMs: states[index]?.resetMs ?? budget.windowMs,
      }));
      if (outcome.result.allowed) {
        if (ctx.trace) ctx.addTrace({ evaluator: 'ratelimit', name: 'token budgets', result: `room left: ${describe(items)}`, durationMs });
        return granted(`within token budgets (${describe(items)})`, grantOf(states.map((state) => state.windowStartMs)));
      }

      options.budgetMetrics().refused.inc();
      const deciding = outcome.result.exceededIndex ?? 0;
      const over = planned.filter((_, index) => states[index]?.exceeded).map(({ budget }) => budget);
      const retryAfterMs = states[deciding]?.resetMs ?? 0;
      const reason = `token budget ${quoteList(over.map((budget) => budget.name))} spent (${over
        .map((budget) => `${budget.limit} ${budget.count} tokens per ${formatWindow(budget.windowMs)}`)
        .join(', ')})${reserve > 0 ? ` or too small for the ${reserve}-token reservation` : ''}; retry in ${ceilSeconds(retryAfterMs)} s`;
      ctx.addTrace({ evaluator: 'ratelimit', name: 'token budgets', result: `refused: ${describe(items)}`, durationMs });
      return deny(policy, 'ratelimit', 429, reason, { headers: rateLimitHeaders(items, { retryAfterMs, action: 'overwrite' }) });
    },
  };
}

/** Tokens to reserve on output and total budgets: the request's own cap, else the default; 0 without reservation. */
function reservationFor(reservation: Reservation | undefined, body: string): number {
  if (reservation === undefined) return 0;
  const asked = requestedMaxTokens(body) ?? reservation.defaultTokens;
  return reservation.maxTokens === undefined ? asked : Math.min(asked, reservation.maxTokens);
}

