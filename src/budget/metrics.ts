// Token-budget metrics, registered once per Services in the server's Prometheus registry. Label values are
// bounded: outcomes, reasons, providers, token kinds, stages.
import { Counter, Gauge } from 'prom-client';
import type { Services } from '../pipeline/services.js';

export class BudgetMetrics {
  /** Responses settled, by how their charge was decided (usage, partial, fallback, none) and why. */
  readonly responses: Counter<'outcome' | 'reason' | 'provider'>;
  /** Tokens providers reported in settled responses, by kind (input, output). */
  readonly tokens: Counter<'kind'>;
  /** Store calls that failed (Redis down or slow), by stage (check, settle) and reason. */
  readonly storeFailures: Counter<'stage' | 'reason'>;
  /** Checks refused because a token budget was spent. */
  readonly refused: Counter;
  /** ext_proc streams open now: must return to 0 when Envoy is idle (no per-stream state is kept). */
  readonly openStreams: Gauge;

  constructor(services: Pick<Services, 'metrics'>) {
    const registry = services.metrics.registry;
    const registers = [registry];
    // A registry shared by two Services (several apps in one process) must not get the same name twice.
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    this.responses = existing('egress_authz_token_budget_responses_total') ?? new Counter({
      name: 'egress_authz_token_budget_responses_total',
      help: 'Responses whose token usage was settled: outcome usage|partial|fallback|none, with the reason when usage was not read',
      labelNames: ['outcome', 'reason', 'provider'],
      registers,
    });
    this.tokens = existing('egress_authz_token_budget_tokens_total') ?? new Counter({
      name: 'egress_authz_token_budget_tokens_total',
      help: 'Tokens providers reported in settled responses (once per response, whatever the number of budgets), by kind',
      labelNames: ['kind'],
      registers,
    });
    this.storeFailures = existing('egress_authz_token_budget_store_failures_total') ?? new Counter({
      name: 'egress_authz_token_budget_store_failures_total',
      help: 'Token-budget store calls that failed, by stage (check, settle) and reason',
      labelNames: ['stage', 'reason'],
      registers,
    });
    this.refused = existing('egress_authz_token_budget_refused_total') ?? new Counter({
      name: 'egress_authz_token_budget_refused_total',
      help: 'Checks answered 429 because a token budget was spent',
      registers,
    });
    this.openStreams = existing('egress_authz_extproc_streams_open') ?? new Gauge({
      name: 'egress_authz_extproc_streams_open',
      help: 'ext_proc streams open now',
      registers,
    });
  }
}

export function budgetMetrics(services: Pick<Services, 'metrics' | 'singleton'>): BudgetMetrics {
  return services.singleton('token-budget-metrics', () => new BudgetMetrics(services));
}
