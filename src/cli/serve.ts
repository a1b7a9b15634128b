// `egress-authz serve`: run the server until SIGTERM/SIGINT; SIGHUP reloads policies.
import { resolveServeConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { startApp, StartupError } from '../server/app.js';

export async function runServe(argv: readonly string[]): Promise<number> {
  const config = resolveServeConfig(argv);
  const logger = createLogger(config.logLevel);
  let app;
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
  const started = app;
  process.on('SIGHUP', () => started.reload());
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'signal received');
      started.shutdown().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.flush();
  return 0;
}
