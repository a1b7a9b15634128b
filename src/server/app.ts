// Wires one server process: policies, services, gRPC + admin endpoints, hot reload and graceful shutdown.
//
// Reload safety: the active PolicySet is one immutable value swapped in a single assignment. The Authorizer
// reads it once when a Check starts and uses that set to the end, so a Check in flight during a reload
// finishes on the set it started with; a failed reload never touches the active set.
import type { Logger } from 'pino';
import { SERVE_DEFAULTS, type ServeConfig } from '../config.js';
import { Metrics } from '../observability/metrics.js';
import { logDecision, type DecisionLogOptions } from '../observability/decision-log.js';
import { Authorizer, type CheckOptions, type CheckOutcome } from '../pipeline/authorizer.js';
import { andThen } from '../pipeline/maybe-async.js';
import { extProcService } from '../extproc/service.js';
import { Services } from '../pipeline/services.js';
import { formatDiagnostic, type Diagnostic } from '../policy/diagnostics.js';
import { loadPolicyDirectory } from '../policy/load.js';
import type { PolicySet } from '../policy/policy-set.js';
import { startAdminServer, type AdminServer } from './admin.js';
import { explainRoute } from './explain-endpoint.js';
import { startGrpcServer, type CheckCounts, type GrpcServerHandle } from './grpc-server.js';
import { PolicyDirectoryWatcher, directoryFingerprint } from './watch.js';

const NO_OPTIONS: CheckOptions = {};

/** What asked for a (re)load: shown in logs and /readyz. */
export type ReloadTrigger = 'startup' | 'watch' | 'SIGHUP' | 'api';

export interface ReloadStatus {
  readonly ok: boolean;
  /** ISO time of the attempt. */
  readonly at: string;
  readonly trigger: ReloadTrigger;
  /** Diagnostics of a failed attempt (0 when ok). */
  readonly errors: number;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly diagnostics: readonly Diagnostic[];
}

export interface AppState {
  readonly ready: boolean;
  readonly shuttingDown: boolean;
  /** Policy documents in the active set. */
  readonly policies: number;
  /** 1 for the set loaded at start-up, +1 for every successful reload. */
  readonly generation: number;
  readonly lastReload: ReloadStatus;
}

export interface AppOptions {
  /** Serve /healthz /readyz /metrics on config.adminListen (default true; cluster workers leave it to the primary). */
  readonly admin?: boolean;
  /** Called after every state change (reload, shutdown start): cluster workers report it to the primary. */
  onStateChange?(state: AppState): void;
}

export interface App {
  readonly grpcPort: number;
  /** 0 when this process serves no admin endpoint. */
  readonly adminPort: number;
  readonly services: Services;
  /** Reloads policies; a failing reload keeps the last good set, logs every error and sets the metrics. */
  reload(trigger?: ReloadTrigger): ReloadResult;
  policySet(): PolicySet;
  state(): AppState;
  checkCounts(): CheckCounts;
  /** Not ready + NOT_SERVING, wait --shutdown-delay, stop accepting, drain up to --shutdown-timeout, close. */
  shutdown(): Promise<void>;
}

export class StartupError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
  }
}

function observe(set: PolicySet, metrics: Metrics): PolicySet {
  const observer = metrics.stageObserver();
  for (const p of [...set.policies, ...set.globals]) p.observeStages(observer);
  return set;
}

export async function startApp(
  config: ServeConfig,
  logger: Logger,
  metrics = new Metrics({ defaultMetrics: true }),
  opts: AppOptions = {},
): Promise<App> {
  const settings = {
    watchDebounceMs: config.watchDebounceMs ?? SERVE_DEFAULTS.watchDebounceMs,
    watchPollIntervalMs: config.watchPollIntervalMs ?? SERVE_DEFAULTS.watchPollIntervalMs,
    shutdownDelayMs: config.shutdownDelayMs ?? SERVE_DEFAULTS.shutdownDelayMs,
  };
  const decisionLog: DecisionLogOptions = {
    mode: config.decisionLog,
    sampleRate: config.decisionLogSampleRate ?? SERVE_DEFAULTS.decisionLogSampleRate,
  };
  const services = new Services(
    {
      checkDeadlineMs: config.checkDeadlineMs,
      kubeconfig: config.kubeconfig,
      redisUrl: config.redisUrl,
      vaultAddr: config.vaultAddr,
      defaultDecision: config.defaultDecision,
    },
    logger,
    metrics,
  );
  // Taken before the first load, so a change racing start-up is still seen by the watcher's poll.
  const fingerprintAtLoad = config.watch ? directoryFingerprint(config.policies) : '';
  const first = loadPolicyDirectory(config.policies, services);
  if (!first.ok) {
    metrics.recordReload(false);
    await services.close();
    throw new StartupError(first.diagnostics);
  }
  let active: PolicySet = observe(first.set, metrics);
  let generation = 1;
  let lastReload: ReloadStatus = { ok: true, at: new Date().toISOString(), trigger: 'startup', errors: 0 };
  metrics.recordReload(true, active.documentCount);
  let shuttingDown = false;
  let admin: AdminServer | undefined;
  let watcher: PolicyDirectoryWatcher | undefined;

  const state = (): AppState => ({
    ready: !shuttingDown,
    shuttingDown,
    policies: active.documentCount,
    generation,
    lastReload,
  });
  const notify = () => opts.onStateChange?.(state());

  // Start-up work the policies registered (Kubernetes client, Redis connection) finishes before the port
  // opens, so the first Checks are not 503s from backends still connecting. Bounded by each warm-up.
  await services.warm();
  const authorizer = new Authorizer(services, () => active);
  // Token budgets: Envoy's ext_proc filter streams LLM responses here (docs/token-budgets.md).
  const extProc = extProcService(services);
  const grpc: GrpcServerHandle = await startGrpcServer(
    config.listen,
    (view, clientDeadline) => {
      const t0 = performance.now();
      const finish = (outcome: CheckOutcome): CheckOutcome => {
        const d = outcome.decision;
        const ms = performance.now() - t0;
        metrics.recordCheck(d.policy || '(none)', d.kind, d.kind === 'allow' ? 200 : d.status, ms / 1000);
        logDecision(logger, decisionLog, view, outcome, ms);
        return outcome;
      };
      return andThen(authorizer.decide(view, clientDeadline === undefined ? NO_OPTIONS : { clientDeadline }), finish);
    },
    (reason) => {
      metrics.checks.inc({ policy: '(none)', decision: 'invalid', status: '400' });
      logger.warn({ reason }, 'invalid CheckRequest');
    },
    [extProc],
  );

  metrics.countInflightWith(() => grpc.inflight());

  const reload = (trigger: ReloadTrigger = 'api'): ReloadResult => {
    const r = loadPolicyDirectory(config.policies, services);
    if (!r.ok) {
      metrics.recordReload(false);
      lastReload = { ok: false, at: new Date().toISOString(), trigger, errors: r.diagnostics.length };
      for (const d of r.diagnostics) {
        logger.error({ file: d.file, line: d.line, col: d.col, trigger }, `policy reload failed: ${formatDiagnostic(d)}`);
      }
      logger.error(
        { trigger, errors: r.diagnostics.length, generation, policies: active.documentCount },
        'policy reload failed: still serving the last good policy set',
      );
      notify();
      return { ok: false, diagnostics: r.diagnostics };
    }
    active = observe(r.set, metrics);
    generation++;
    lastReload = { ok: true, at: new Date().toISOString(), trigger, errors: 0 };
    metrics.recordReload(true, active.documentCount);
    logger.info({ trigger, generation, policies: active.documentCount }, 'policies reloaded');
    notify();
    return { ok: true, diagnostics: [] };
  };

  if (opts.admin ?? true) {
    admin = await startAdminServer(config.adminListen, metrics.registry, {
      ready: () => !shuttingDown,
      readyDetail: () => {
        const s = state();
        return { policies: s.policies, generation: s.generation, lastReload: s.lastReload, shuttingDown: s.shuttingDown };
      },
    }, config.enableExplain ? [explainRoute({ authorizer, policySet: () => active, logger })] : []);
  }
  if (config.watch) {
    watcher = new PolicyDirectoryWatcher(
      config.policies,
      { debounceMs: settings.watchDebounceMs, pollIntervalMs: settings.watchPollIntervalMs, logger, onChange: () => reload('watch') },
      fingerprintAtLoad,
    );
  }
  grpc.setServing(true);
  logger.info(
    { grpc: grpc.port, admin: admin?.port, policies: active.documentCount, watch: config.watch },
    opts.admin === false ? 'worker serving' : 'egress-authz serving',
  );

  let shutdownDone: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    shuttingDown = true;
    watcher?.close();
    // Health first: Envoy's health checks and Kubernetes readiness stop sending new work here.
    grpc.setServing(false);
    notify();
    if (settings.shutdownDelayMs > 0) {
      logger.info({ delayMs: settings.shutdownDelayMs }, 'shutting down: not ready, still answering until the delay ends');
      await new Promise((r) => setTimeout(r, settings.shutdownDelayMs));
    }
    logger.info({ inflight: grpc.inflight() }, 'shutting down: stopped accepting, draining in-flight checks');
    const { dropped } = await grpc.shutdown(config.shutdownTimeoutMs);
    if (dropped) logger.warn({ dropped, timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: unanswered checks were cancelled');
    await admin?.close();
    await extProc.drain(); // token-budget debits of the last responses, before the store closes
    await services.close();
    const { started, answered } = grpc.counts();
    logger.info({ started, answered, dropped }, 'shutdown complete');
  };

  return {
    grpcPort: grpc.port,
    adminPort: admin?.port ?? 0,
    services,
    policySet: () => active,
    state,
    checkCounts: () => grpc.counts(),
    reload,
    shutdown() {
      shutdownDone ??= shutdown();
      return shutdownDone;
    },
  };
}
