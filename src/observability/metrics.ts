// Prometheus metrics (prom-client). Label values are bounded: policy names, decisions, statuses, evaluator
// kinds, backend names and outcomes; never usernames, hosts outside policies, paths or tokens.
// With `serve --workers N` each worker keeps its own registry and the primary sums them (prom-client's
// AggregatorRegistry); `aggregator` below says how a metric combines across workers where a sum is wrong.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';

export class Metrics {
  readonly registry = new Registry();
  readonly checks: HotCounter;
  readonly checkDuration: HotHistogram;
  readonly inflight: Gauge;
  readonly evaluatorDuration: HotHistogram;
  readonly evaluatorErrors: HotCounter;
  readonly backendCalls: Counter<'backend' | 'outcome'>;
  readonly backendDuration: Histogram<'backend'>;
  readonly cacheEvents: HotCounter;
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
    // Updated on every Check: plain-number series (hot-metrics.ts); the rest are prom-client metrics.
    this.checks = new HotCounter('egress_authz_checks_total', 'Checks answered, by policy, decision and HTTP status', ['policy', 'decision', 'status'], registers);
    this.checkDuration = new HotHistogram(
      'egress_authz_check_duration_seconds',
      'Time to answer one Check',
      ['decision'],
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2],
      registers,
    );
    const inflightSource = () => this.inflightSource();
    this.inflight = new Gauge({
      name: 'egress_authz_checks_in_flight',
      help: 'Checks being evaluated now',
      registers,
      collect() {
        this.set(inflightSource());
      },
    });
    this.evaluatorDuration = new HotHistogram(
      'egress_authz_evaluator_duration_seconds',
      'Time spent per evaluator kind',
      ['evaluator'],
      [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2],
      registers,
    );
    this.evaluatorErrors = new HotCounter('egress_authz_evaluator_errors_total', 'Evaluator errors (CEL runtime errors, backend failures)', ['evaluator'], registers);
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
    this.cacheEvents = new HotCounter('egress_authz_cache_events_total', 'Cache hits, misses and coalesced waits by cache', ['cache', 'event'], registers);
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

  // Our label sets are few and bounded: each hot series is looked up once per label set and then kept.
  private readonly checkSeries = bindOnce((k: string) => {
    const [policy, decision, status] = k.split('\0') as [string, string, string];
    return { count: this.checks.labels(policy, decision, status), duration: this.checkDuration.labels(decision) };
  });
  private readonly stageSeries = bindOnce((evaluator: string) => this.evaluatorDuration.labels(evaluator));
  private readonly cacheHits = bindOnce((cache: string) => this.cacheEvents.labels(cache, 'hit'));
  private readonly cacheSeries = bindOnce((k: string) => {
    const [cache, event] = k.split('\0') as [string, string];
    return this.cacheEvents.labels(cache, event);
  });

  /** Where egress_authz_checks_in_flight is read from at scrape time. */
  countInflightWith(source: () => number): void {
    this.inflightSource = source;
  }

  /** One answered Check: the checks counter and the duration histogram. */
  recordCheck(policy: string, decision: string, status: number, seconds: number): void {
    const s = this.checkSeries(`${policy}\0${decision}\0${status}`);
    s.count.inc();
    s.duration.observe(seconds);
  }

  /** Per-stage timings and failures for CompiledPolicy.observeStages (src/policy/policy.ts StageObserver). */
  stageObserver(): { stageDone(evaluator: string, seconds: number, failed: boolean): void; failed(evaluator: string): void } {
    return {
      stageDone: (evaluator, seconds, failed) => {
        this.stageSeries(evaluator).observe(seconds);
        // An error series exists once an error happened (as with prom-client), so it is looked up then.
        if (failed) this.evaluatorErrors.labels(evaluator).inc();
      },
      failed: (evaluator) => this.evaluatorErrors.labels(evaluator).inc(),
    };
  }

  /** A cache observer that feeds cacheEvents. */
  cacheObserver() {
    return {
      // Hits happen on every warm Check: their series is found by the cache's name alone.
      onHit: (cache: string) => this.cacheHits(cache).inc(),
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
