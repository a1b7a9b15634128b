// Backend failures are logged, but at most once per interval per backend and message: an apiserver that is
// down must not turn every Check into a log line. Messages are secret-free by construction (KubeApiError).
import type { Logger } from 'pino';

const INTERVAL_MS = 10_000;
const lastLogged = new WeakMap<Logger, Map<string, number>>();

export function warnBackendThrottled(logger: Logger, backend: string, message: string, now = Date.now()): void {
  let seen = lastLogged.get(logger);
  if (!seen) {
    seen = new Map();
    lastLogged.set(logger, seen);
  }
  const key = `${backend}\0${message}`;
  const last = seen.get(key);
  if (last !== undefined && now - last < INTERVAL_MS) return;
  if (seen.size > 1000) seen.clear();
  seen.set(key, now);
  logger.warn({ backend }, message);
}
