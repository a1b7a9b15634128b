// GET a small JSON document (OIDC discovery, a JWKS) over HTTPS, trusting the system roots or a given CA,
// through the backends' pooled HTTP client.
// Plain HTTP is accepted only for loopback addresses (local development and tests).
import { HttpPool, PoolRequestError } from '../backends/http-pool.js';

const MAX_BODY_BYTES = 1024 * 1024;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export class HttpJsonError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HttpJsonError';
  }
}

/** Why `url` may not be fetched (undefined when it may): https anywhere, http only on loopback. */
export function urlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname)) return undefined;
  return `"${url}" must be an https URL (plain http only on loopback)`;
}

/** A pool for one key source's few fetches (discovery, the key set): two kept-alive connections per origin. */
export function jsonPool(ca?: string | Buffer): HttpPool {
  return new HttpPool({ maxSockets: 2, idleTimeoutMs: 15_000, ...(ca ? { tls: { ca } } : {}) });
}

export interface HttpJsonOptions {
  readonly headers?: Record<string, string>;
  readonly signal: AbortSignal;
}

/** GET `url` through `pool` and parse the answer; rejects with a secret-free HttpJsonError. */
export async function getJson(pool: HttpPool, url: string, opts: HttpJsonOptions): Promise<unknown> {
  const u = new URL(url);
  const where = `${u.host}${u.pathname}`;
  let res;
  try {
    res = await pool.request(u, {
      method: 'GET',
      headers: { accept: 'application/json', ...opts.headers },
      signal: opts.signal,
      maxResponseBytes: MAX_BODY_BYTES,
    });
  } catch (err) {
    if (!(err instanceof PoolRequestError)) throw err;
    const why =
      err.failure === 'aborted' ? 'no answer in time' : err.failure === 'too-large' ? `answer larger than ${MAX_BODY_BYTES} bytes` : err.reason;
    throw new HttpJsonError(`GET ${where}: ${why}`, err.status);
  }
  if (res.status < 200 || res.status > 299) throw new HttpJsonError(`GET ${where}: HTTP ${res.status}`, res.status);
  try {
    return JSON.parse(res.text);
  } catch {
    throw new HttpJsonError(`GET ${where}: the answer is not JSON`, res.status);
  }
}
