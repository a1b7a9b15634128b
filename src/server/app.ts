// Wires one server process: policies, services, gRPC + admin endpoints, reload and graceful shutdown.
import type { Logger } from 'pino';
import type { ServeConfig } from '../config.js';
import { Metrics } from '../observability/metrics.js';
import { logDecision } from '../observability/decision-log.js';
import { Authorizer } from '../pipeline/authorizer.js';
import { Services } from '../pipeline/services.js';
import { formatDiagnostic, type Diagnostic } from '../policy/diagnostics.js';
import { loadPolicyDirectory } from '../policy/load.js';
import type { PolicySet } from '../policy/policy-set.js';
import { startAdminServer } from './admin.js';
import { startGrpcServer, type GrpcServerHandle } from './grpc-server.js';

export interface App {
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly services: Services;
  /** Reloads policies; a failing reload keeps the last good set. */
  reload(): { ok: boolean; diagnostics: readonly Diagnostic[] };
  policySet(): PolicySet | undefined;
  shutdown(): Promise<void>;
}

export class StartupError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
  }
}

export async function startApp(config: ServeConfig, logger: Logger, metrics = new Metrics({ defaultMetrics: true })): Promise<App> {
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
  const first = loadPolicyDirectory(config.policies, services);
  if (!first.ok) {
    metrics.policyReloads.inc({ result: 'failed' });
    await services.close();
    throw new StartupError(first.diagnostics);
  }
  let active: PolicySet = first.set;
  metrics.policyReloads.inc({ result: 'ok' });
  metrics.policiesLoaded.set(active.documentCount);
  let shuttingDown = false;

  const authorizer = new Authorizer(services, () => active);
  const grpc: GrpcServerHandle = await startGrpcServer(
    config.listen,
    async (view) => {
      const t0 = performance.now();
      metrics.inflight.inc();
      try {
        const outcome = await authorizer.check(view);
        const d = outcome.decision;
        const ms = performance.now() - t0;
        const status = d.kind === 'allow' ? 200 : d.status;
        metrics.checks.inc({ policy: d.policy || '(none)', decision: d.kind, status: String(status) });
        metrics.checkDuration.observe({ decision: d.kind }, ms / 1000);
        logDecision(logger, config.decisionLog, view, outcome, ms);
        return outcome;
      } finally {
        metrics.inflight.dec();
      }
    },
    (reason) => {
      metrics.checks.inc({ policy: '(none)', decision: 'invalid', status: '400' });
      logger.warn({ reason }, 'invalid CheckRequest');
    },
  );
  const admin = await startAdminServer(config.adminListen, metrics, {
    ready: () => !shuttingDown,
    readyDetail: () => ({ policies: active.documentCount, shuttingDown }),
  });
  grpc.setServing(true);
  logger.info({ grpc: grpc.port, admin: admin.port, policies: active.documentCount }, 'egress-authz serving');

  return {
    grpcPort: grpc.port,
    adminPort: admin.port,
    services,
    policySet: () => active,
    reload() {
      const r = loadPolicyDirectory(config.policies, services);
      if (!r.ok) {
        metrics.policyReloads.inc({ result: 'failed' });
        for (const d of r.diagnostics) logger.error({ file: d.file, line: d.line, col: d.col }, `policy reload failed: ${formatDiagnostic(d)}`);
        return { ok: false, diagnostics: r.diagnostics };
      }
      active = r.set;
      metrics.policyReloads.inc({ result: 'ok' });
      metrics.policiesLoaded.set(active.documentCount);
      logger.info({ policies: active.documentCount }, 'policies reloaded');
      return { ok: true, diagnostics: [] };
    },
    async shutdown() {
      if (shuttingDown) return;
      shuttingDown = true;
      grpc.setServing(false);
      logger.info({ inflight: grpc.inflight() }, 'shutting down: draining in-flight checks');
      await grpc.shutdown(config.shutdownTimeoutMs);
      await admin.close();
      await services.close();
      logger.info('shutdown complete');
    },
  };
}
