// `serve --workers N`: a primary process forks N workers (node:cluster) that share the gRPC port; the kernel
// socket stays in the primary, which hands each new connection to a worker in turn.
//
// - Each worker is a complete server (startApp) without an admin port: its own policies, watcher, caches.
// - The primary serves the admin port: /metrics sums every worker's registry (prom-client AggregatorRegistry),
//   /readyz is ready when every worker reported ready, /healthz says the primary is alive.
// - Signals go to the primary (PID 1 in a container): it forwards SIGHUP (reload) and SIGTERM (drain) to every
//   worker, waits for them to drain and exit, and exits 0 when they all did.
// - A worker that dies while serving is replaced (with backoff); one that fails at start-up fails the start.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { ServeConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { startAdminServer } from './admin.js';
import { startApp, StartupError, type App, type AppState } from './app.js';

/** Worker → primary messages. */
export type WorkerMessage =
  | { readonly type: 'egress-authz:state'; readonly grpcPort: number; readonly state: AppState }
  | { readonly type: 'egress-authz:startup-failed'; readonly message: string; readonly exitCode: number };

function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('egress-authz:');
}

const RESPAWN_BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 30_000];

/** Resolves with the first of SIGTERM / SIGINT (and, in a worker, the primary going away). */
export function shutdownSignal(logger: Logger, alsoOnDisconnect = false): Promise<string> {
  return new Promise((resolve) => {
    const stop = (why: string) => {
      logger.info({ signal: why }, 'signal received');
      resolve(why);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    if (alsoOnDisconnect) process.once('disconnect', () => stop('primary gone'));
  });
}

/** The worker side: a full server without an admin port, reporting its state to the primary. */
export async function runWorker(config: ServeConfig): Promise<number> {
  const id = cluster.worker?.id ?? 0;
  const logger = createLogger(config.logLevel).child({ worker: id });
  const metrics = new Metrics({ defaultMetrics: true });
  // Answers the primary's metric requests with this worker's registry.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  const send = (m: WorkerMessage): Promise<void> =>
    new Promise((resolve) => {
      if (!process.connected || !process.send) return resolve();
      process.send(m, undefined, {}, () => resolve());
    });
  let app: App | undefined;
  // Registered before start-up: SIGHUP's default action would end the process.
  process.on('SIGHUP', () => app?.reload('SIGHUP'));
  try {
    let port = 0;
    app = await startApp(config, logger, metrics, {
      admin: false,
      onStateChange: (state) => void send({ type: 'egress-authz:state', grpcPort: port, state }),
    });
    port = app.grpcPort;
  } catch (err) {
    const policyError = err instanceof StartupError;
    await send({ type: 'egress-authz:startup-failed', message: (err as Error).message, exitCode: policyError ? 2 : 1 });
    logger.flush();
    if (process.connected) process.disconnect();
    return policyError ? 2 : 1;
  }
  const started = app;
  const stopping = shutdownSignal(logger, true);
  void send({ type: 'egress-authz:state', grpcPort: started.grpcPort, state: started.state() });
  await stopping;
  await started.shutdown();
  logger.flush();
  // The IPC channel would keep this process alive; the primary sees 'exit' next.
  if (process.connected) process.disconnect();
  return 0;
}

interface Slot {
  readonly index: number;
  worker: Worker;
  grpcPort?: number;
  state?: AppState;
  /** Consecutive deaths without reaching ready (picks the respawn backoff). */
  failures: number;
}

/** The primary side. Returns the process exit code. */
export async function runPrimary(config: ServeConfig): Promise<number> {
  const logger = createLogger(config.logLevel).child({ role: 'primary' });
  const aggregator = new AggregatorRegistry();
  const slots: Slot[] = [];
  let shuttingDown = false;
  let startupFailure: { message: string; exitCode: number } | undefined;
  let allReady: () => void = () => {};
  let startupFailed: () => void = () => {};
  const readyOnce = new Promise<void>((resolve) => (allReady = resolve));
  const failedOnce = new Promise<void>((resolve) => (startupFailed = resolve));
  let serving = false;
  const exits = new Map<Worker, Promise<number>>();

  const fork = (slot: Pick<Slot, 'index' | 'failures'>): Slot => {
    const worker = cluster.fork();
    const s: Slot = { ...slot, worker, grpcPort: undefined, state: undefined };
    slots[slot.index] = s;
    exits.set(
      worker,
      new Promise((resolve) =>
        worker.once('exit', (code, signal) => {
          resolve(code ?? (signal ? 1 : 0));
          onExit(s, worker, code, signal);
        }),
      ),
    );
    worker.on('message', (m: unknown) => {
      if (!isWorkerMessage(m) || slots[s.index]?.worker !== worker) return;
      if (m.type === 'egress-authz:startup-failed') {
        if (!serving && !startupFailure) {
          startupFailure = { message: m.message, exitCode: m.exitCode };
          startupFailed();
        } else if (serving) {
          logger.error({ worker: worker.id }, `replacement worker cannot start: ${m.message.split('\n')[0]}`);
        }
        return;
      }
      s.grpcPort = m.grpcPort;
      s.state = m.state;
      if (m.state.ready) s.failures = 0;
      if (!serving && slots.length === config.workers && slots.every((x) => x.state?.ready)) allReady();
    });
    return s;
  };

  const onExit = (s: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slots[s.index]?.worker !== worker) return;
    s.state = undefined;
    if (shuttingDown) {
      logger.info({ worker: worker.id, code, signal }, 'worker exited');
      return;
    }
    if (!serving) {
      if (!startupFailure) {
        startupFailure = { message: `worker ${worker.id} exited during start-up (code ${code}, signal ${signal})`, exitCode: 1 };
        startupFailed();
      }
      return;
    }
    const delay = RESPAWN_BACKOFF_MS[Math.min(s.failures, RESPAWN_BACKOFF_MS.length - 1)]!;
    logger.error({ worker: worker.id, code, signal, respawnInMs: delay }, 'worker died; starting a replacement');
    setTimeout(() => {
      if (!shuttingDown) fork({ index: s.index, failures: s.failures + 1 });
    }, delay).unref();
  };

  /** SIGTERM to every live worker; 0 when each of them drained and exited cleanly. */
  const stopWorkers = async (): Promise<number> => {
    const alive = slots.filter((s) => !s.worker.isDead());
    for (const s of alive) s.worker.process.kill('SIGTERM');
    const codes = await Promise.all(alive.map((s) => exits.get(s.worker)!));
    return codes.every((c) => c === 0) ? 0 : 1;
  };

  process.on('SIGHUP', () => {
    logger.info({ workers: slots.length }, 'SIGHUP: asking every worker to reload');
    for (const s of slots) if (!s.worker.isDead()) s.worker.process.kill('SIGHUP');
  });
  if (config.enableExplain) logger.warn('--enable-explain is not served with --workers > 1 (the primary holds no policies)');
  for (let i = 0; i < config.workers; i++) fork({ index: i, failures: 0 });
  const stopping = shutdownSignal(logger);
  const first = await Promise.race([readyOnce.then(() => 'ready' as const), failedOnce.then(() => 'failed' as const), stopping.then(() => 'signal' as const)]);
  if (first !== 'ready') {
    shuttingDown = true;
    await stopWorkers();
    if (startupFailure) {
      console.error(
        startupFailure.exitCode === 2
          ? `egress-authz: policies in ${config.policies} do not load:\n${startupFailure.message}`
          : `egress-authz: ${startupFailure.message}`,
      );
    }
    logger.flush();
    return startupFailure?.exitCode ?? 0;
  }
  serving = true;

  const admin = await startAdminServer(
    config.adminListen,
    { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() },
    {
      // After start-up, one serving worker keeps the pod ready: the port still answers while a dead worker is
      // replaced (the primary only hands connections to workers that listen).
      ready: () => !shuttingDown && slots.some((s) => s.state?.ready),
      readyDetail: () => ({
        shuttingDown,
        workers: slots.map((s) => ({
          worker: s.worker.id,
          pid: s.worker.process.pid,
          ready: s.state?.ready ?? false,
          policies: s.state?.policies,
          generation: s.state?.generation,
          lastReload: s.state?.lastReload,
        })),
      }),
    },
  );
  logger.info(
    { grpc: slots[0]?.grpcPort, admin: admin.port, workers: slots.length, policies: slots[0]?.state?.policies },
    'egress-authz serving',
  );

  await stopping;
  shuttingDown = true;
  logger.info({ workers: slots.length }, 'forwarding SIGTERM to workers; waiting for them to drain');
  const code = await stopWorkers();
  await admin.close();
  logger.info({ code }, 'shutdown complete: all workers exited');
  logger.flush();
  return code;
}
