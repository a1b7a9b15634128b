// `egress-authz serve`: run the server until SIGTERM/SIGINT (drain, exit 0); SIGHUP reloads policies.
// With --workers N > 1 this process becomes a cluster primary (src/server/cluster.ts).
import cluster from 'node:cluster';
import { resolveServeConfig, type ServeConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { startApp, StartupError, type App } from '../server/app.js';
import { runPrimary, runWorker, shutdownSignal } from '../server/cluster.js';

/** After a clean shutdown, a handle someone forgot to close must not keep the process (and the rollout) waiting. */
const EXIT_GRACE_MS = 2000;

export async function runServe(argv: readonly string[]): Promise<number> {
  const config = resolveServeConfig(argv);
  let code: number;
  if (cluster.isWorker) code = await runWorker(config);
  else if (config.workers > 1) code = await runPrimary(config);
  else code = await runSingle(config);
  setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  return code;
}

async function runSingle(config: ServeConfig): Promise<number> {
  const logger = createLogger(config.logLevel);
  let app: App | undefined;
  // Registered before start-up: SIGHUP's default action would end the process.
  process.on('SIGHUP', () => (app ? app.reload('SIGHUP') : logger.info('SIGHUP during start-up: the policies are being loaded now')));
  try {
    app = await startApp(config, logger);
  } catch (err) {
    if (err instanceof StartupError) {
      console.error(`egress-authz: policies in ${config.policies} do not load:\n${err.message}`);
      logger.flush();
      return 2;
    }
    throw err;
  }
  await shutdownSignal(logger);
  await app.shutdown();
  logger.flush();
  return 0;
}
