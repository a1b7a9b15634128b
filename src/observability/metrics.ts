// Prometheus metrics (prom-client). Label values are bounded: policy names, decisions, statuses, evaluator
// kinds, backend names and outcomes; never usernames, hosts outside policies, paths or tokens.
// With `serve --workers N` each worker keeps its own registry and the primary sums them (prom-client's
// AggregatorRegistry); `aggregator` below says how a metric combines across workers where a sum is wrong.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly checks: Counter<'policy' | 'decision' | 'status'>;
  readonly checkDuration: Histogram<'decision'>;
  readonly inflight: Gauge;
  readonly evaluatorDuration: Histogram<'evaluator'>;
  readonly evaluatorErrors: Counter<'evaluator'>;
  readonly backendCalls: Counter<'backend' | 'outcome'>;
  readonly backendDuration: Histogram<'backend'>;
  readonly cacheEvents: Counter<'cache' | 'event'>;
  readonly policyReloads: Counter<'result'>;
  readonly policiesLoaded: Gauge;
  readonly lastReloadSuccessful: Gauge;
  readonly lastReloadTimestamp: Gauge;
  /** Checks whose rate limits the store could not answer, by the failure mode applied (allow, deny). */
  readonly ratelimitStoreFailures: Counter<'mode'>;
  /** Reads the number of Checks in flight at scrape time (the gRPC server counts them; no per-Check gauge work). */
  private inflightSource: () => number = () => 0;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.checks = new Counter({
      name: 'egress_authz_checks_total',
      help: 'Checks answered, by policy, decision and HTTP status',
      labelNames: ['policy', 'decision', 'status'],
      registers,
    });
    this.checkDuration = new Histogram({
      name: 'egress_authz_check_duration_seconds',
      help: 'Time to answer one Check',
      labelNames: ['decision'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2],
      registers,
    });
    const inflightSource = () => this.inflightSource();
    this.inflight = new Gauge({
      name: 'egress_authz_checks_in_flight',
      help: 'Checks being evaluated now',
      registers,
      collect() {
        this.set(inflightSource());
      },
    });
    this.evaluatorDuration = new Histogram({
      name: 'egress_authz_evaluator_duration_seconds',
      help: 'Time spent per evaluator kind',
      labelNames: ['evaluator'],
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2],
      registers,
    });
    this.evaluatorErrors = new Counter({
      name: 'egress_authz_evaluator_errors_total',
      help: 'Evaluator errors (CEL runtime errors, backend failures)',
      labelNames: ['evaluator'],
      registers,
    });
    this.backendCalls = new Counter({
      name: 'egress_authz_backend_calls_total',
      help: 'Calls to backends (tokenreview, jwks, vault, http, redis) by outcome',
      labelNames: ['backend', 'outcome'],
      registers,
    });
    this.backendDuration = new Histogram({
      name: 'egress_authz_backend_duration_seconds',
      help: 'Backend call latency',
      labelNames: ['backend'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1],
      registers,
    });
    this.cacheEvents = new Counter({
      name: 'egress_authz_cache_events_total',
      help: 'Cache hits, misses and coalesced waits by cache',
      labelNames: ['cache', 'event'],
      registers,
    });
    this.policyReloads = new Counter({
      name: 'egress_authz_policy_reloads_total',
      help: 'Policy loads and reloads by result (ok, failed)',
      labelNames: ['result'],
      registers,
    });
    this.policiesLoaded = new Gauge({
      name: 'egress_authz_policies_loaded',
      help: 'Policy documents in the active set',
      aggregator: 'max',
      registers,
    });
    this.lastReloadSuccessful = new Gauge({
      name: 'egress_authz_policy_last_reload_successful',
      help: '1 when the last policy (re)load succeeded, 0 while serving an older set because the files do not load',
      // Across workers: 0 as soon as one worker failed.
      aggregator: 'min',
      registers,
    });
    this.lastReloadTimestamp = new Gauge({
      name: 'egress_authz_policy_last_reload_timestamp_seconds',
      help: 'Unix time of the last policy (re)load attempt',
      aggregator: 'max',
      registers,
    });
    // Both results exist from the start, so rate() and alerts see a 0 rather than no series.
    this.policyReloads.inc({ result: 'ok' }, 0);
    this.policyReloads.inc({ result: 'failed' }, 0);
    this.ratelimitStoreFailures = new Counter({
      name: 'egress_authz_ratelimit_store_failures_total',
      help: 'Checks the rate-limit store could not answer (Redis down or slow), by failure mode applied',
      labelNames: ['mode'],
      registers,
    });
  }

  /** Records one policy load or reload attempt. */
  recordReload(ok: boolean, documents?: number): void {
    this.policyReloads.inc({ result: ok ? 'ok' : 'failed' });
    this.lastReloadSuccessful.set(ok ? 1 : 0);
    this.lastReloadTimestamp.set(Date.now() / 1000);
    if (ok && documents !== undefined) this.policiesLoaded.set(documents);
  }

  // prom-client hashes a label object on every call (a few µs per Check across our metrics). Our label sets
  // are few and bounded, so each series is bound once and reused on the hot path.
  private readonly checkSeries = bindOnce((k: string) => {
    const [policy, decision, status] = k.split('\0') as [string, string, string];
    return { count: this.checks.labels(policy, decision, status), duration: this.checkDuration.labels(decision) };
  });
  private readonly stageSeries = bindOnce((evaluator: string) => ({
    duration: this.evaluatorDuration.labels(evaluator),
    errors: this.evaluatorErrors.labels(evaluator),
  }));
  private readonly cacheSeries = bindOnce((k: string) => {
    const [cache, event] = k.split('\0') as [string, string];
    return this.cacheEvents.labels(cache, event);
  });

  /** One answered Check: the checks counter and the duration histogram. */
  /** Where egress_authz_checks_in_flight is read from at scrape time. */
  countInflightWith(source: () => number): void {
    this.inflightSource = source;
  }

  recordCheck(policy: string, decision: string, status: number, seconds: number): void {
    const s = this.checkSeries(`${policy}\0${decision}\0${status}`);
    s.count.inc();
    s.duration.observe(seconds);
  }

  /** Per-stage timings and failures for CompiledPolicy.observeStages (src/policy/policy.ts StageObserver). */
  stageObserver(): { stageDone(evaluator: string, seconds: number, failed: boolean): void; failed(evaluator: string): void } {
    return {
      stageDone: (evaluator, seconds, failed) => {
        const s = this.stageSeries(evaluator);
        s.duration.observe(seconds);
        if (failed) s.errors.inc();
      },
      failed: (evaluator) => this.stageSeries(evaluator).errors.inc(),
    };
  }

  /** A cache observer that feeds cacheEvents. */
  cacheObserver() {
    return {
      onHit: (cache: string) => this.cacheSeries(`${cache}\0hit`).inc(),
      onMiss: (cache: string) => this.cacheSeries(`${cache}\0miss`).inc(),
      onCoalesced: (cache: string) => this.cacheSeries(`${cache}\0coalesced`).inc(),
    };
  }

  /** Times a backend call and records its outcome. */
  async timeBackend<T>(backend: string, call: () => Promise<T>, outcomeOf?: (v: T) => string): Promise<T> {
    const end = this.backendDuration.startTimer({ backend });
    try {
      const v = await call();
      this.backendCalls.inc({ backend, outcome: outcomeOf ? outcomeOf(v) : 'ok' });
      return v;
    } catch (err) {
      this.backendCalls.inc({ backend, outcome: 'error' });
      throw err;
    } finally {
      end();
    }
  }
}

/** Memoizes `make` per key (for bound metric series: few keys, created once each). */
function bindOnce<T>(make: (key: string) => T): (key: string) => T {
  const made = new Map<string, T>();
  return (key) => {
    let v = made.get(key);
    if (v === undefined) {
      v = make(key);
      made.set(key, v);
    }
    return v;
  };
}
