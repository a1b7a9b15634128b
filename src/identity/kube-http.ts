// The Kubernetes API over the shared pooled HTTP client (src/backends/http-pool.ts; node:https, or node:http for
// a plain-HTTP `kubectl proxy`), for the configurations kube-config.ts understands: a TokenReview POST and
// authenticated GETs, JSON in and out. @kubernetes/client-node is not loaded for this path (importing it costs
// ~70 MiB of RSS).
import { HttpPool, PoolRequestError } from '../backends/http-pool.js';
import { httpStatusError, KubeApiError, networkError, TOKEN_REVIEW_PATH, type OwnedKubeApi, type TokenReviewStatus } from './kube-api.js';
import type { KubeConnection } from './kube-config.js';

/**
 * At most this many connections to the API server. HTTP/1.1 carries one request per connection at a time, so
 * without a bound a burst of N new identities opens N TLS connections at once (106 in the cold-burst
 * benchmark): a handshake each on both sides, N sockets held open afterwards, and N requests landing together
 * on the API server's priority-and-fairness seats. With a bound the burst queues in the pool (each call within
 * its own deadline) and runs on warm connections; a TokenReview takes milliseconds, so 32 at a time serve over
 * a thousand reviews per second while staying far below the API server's default in-flight limits.
 *
 * 32 rather than Vault's 128: `npm run bench -- cold` (TokenReview identities, 1,000 distinct new ones at once,
 * 5 ms fakes, 150 ms Check deadline, 2 CPUs shared by fakes, server and load client, load average 1.6–3.4),
 * six alternating runs per bound. With 128 the identity stage gave up on a TokenReview less often (7–104 of
 * the 503s instead of 139–602), but those Checks then ran out of the Check deadline in the Vault stage:
 * allowed in the burst 0–276 with 128 (median 15) against 1–118 with 32 (median 25), the retry 3 s later
 * fully allowed in every run with either. Past this pool the burst is bound by the shared CPUs and the Vault
 * stage; 128 only left 107–128 connections open to the API server instead of 32 and cost its fake more CPU
 * (1.64–1.80 s against 1.57–1.67 s).
 */
export const KUBE_API_MAX_SOCKETS = 32;
/**
 * An idle pooled connection is closed after this long, before servers and load balancers in front of the
 * API server usually drop idle connections (a connection they drop is only found dead on its next use).
 */
const IDLE_SOCKET_TIMEOUT_MS = 30_000;
/** Larger answers are refused (a list of Secrets is the largest thing we read). */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

export class HttpKubeApi implements OwnedKubeApi {
  readonly server: string;
  private readonly base: URL;
  private readonly pool: HttpPool;

  constructor(private readonly connection: KubeConnection) {
    this.server = connection.server;
    // Relative paths resolve under the server URL, which may carry a path prefix (API proxies such as Rancher's).
    this.base = new URL(connection.server.endsWith('/') ? connection.server : `${connection.server}/`);
    const tls = connection.tls;
    this.pool = new HttpPool({
      maxSockets: KUBE_API_MAX_SOCKETS,
      idleTimeoutMs: IDLE_SOCKET_TIMEOUT_MS,
      ...(tls
        ? {
            tls: {
              secureContext: tls.secureContext,
              rejectUnauthorized: tls.rejectUnauthorized,
              ...(tls.serverName ? { servername: tls.serverName } : {}),
            },
          }
        : {}),
    });
  }

  async tokenReview(token: string, audiences: readonly string[], signal: AbortSignal): Promise<TokenReviewStatus> {
    const spec = audiences.length > 0 ? { token, audiences } : { token };
    const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec });
    const review = await this.send('POST', TOKEN_REVIEW_PATH, body, signal, 'TokenReview');
    return tokenReviewStatusOf(review);
  }

  getJson(pathAndQuery: string, signal: AbortSignal): Promise<unknown> {
    return this.send('GET', pathAndQuery, undefined, signal, `GET ${pathAndQuery.split('?')[0]}`);
  }

  close(): void {
    this.pool.destroy();
  }

  private async send(method: 'GET' | 'POST', pathAndQuery: string, body: string | undefined, signal: AbortSignal, what: string): Promise<unknown> {
    // Read per request: a token file is re-read when the kubelet rotates it.
    let authorization: string | undefined;
    try {
      authorization = await this.connection.authorization.header();
    } catch (err) {
      throw err instanceof KubeApiError ? new KubeApiError(`${what}: ${err.message}`) : networkError(what, err);
    }
    const url = new URL(pathAndQuery.replace(/^\/+/, ''), this.base);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'egress-authz' };
    if (authorization) headers['authorization'] = authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let answer: { status: number; text: string };
    try {
      answer = await this.pool.request(url, { method, headers, body, signal, maxResponseBytes: MAX_ANSWER_BYTES });
    } catch (err) {
      throw kubeApiErrorOf(what, err);
    }
    if (answer.status < 200 || answer.status > 299) throw httpStatusError(what, answer.status, answer.text);
    try {
      return JSON.parse(answer.text);
    } catch {
      throw new KubeApiError(`${what}: the answer is not JSON`, answer.status);
    }
  }
}

/** A pool failure in this module's words: `<what>: no answer in time`, `<what>: ECONNREFUSED`, ... (no status). */
function kubeApiErrorOf(what: string, err: unknown): KubeApiError {
  if (!(err instanceof PoolRequestError)) return networkError(what, err);
  switch (err.failure) {
    case 'aborted':
      return new KubeApiError(`${what}: no answer in time`);
    case 'too-large':
      return new KubeApiError(`${what}: answer larger than ${MAX_ANSWER_BYTES} bytes`);
    default:
      return new KubeApiError(`${what}: ${err.reason}`);
  }
}

/**
 * The status of a TokenReview answer, checked for shape. The parsed values are used as they are (no copies):
 * identityOf builds the cached identity from them.
 */
export function tokenReviewStatusOf(review: unknown): TokenReviewStatus {
  const status = (review as { status?: unknown } | null)?.status;
  if (status === undefined || status === null) return { authenticated: false, error: 'TokenReview returned no status' };
  if (typeof status !== 'object') throw malformed('status');
  const s = status as Record<string, unknown>;
  const out: { -readonly [K in keyof TokenReviewStatus]: TokenReviewStatus[K] } = { authenticated: s['authenticated'] === true };
  if (s['user'] !== undefined && s['user'] !== null) out.user = userOf(s['user']);
  if (s['audiences'] !== undefined && s['audiences'] !== null) out.audiences = stringList(s['audiences'], 'status.audiences');
  if (typeof s['error'] === 'string') out.error = s['error'];
  return out;
}

function userOf(value: unknown): NonNullable<TokenReviewStatus['user']> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('status.user');
  const u = value as Record<string, unknown>;
  const user: { username?: string; uid?: string; groups?: readonly string[]; extra?: Record<string, readonly string[]> } = {};
  if (u['username'] !== undefined) user.username = string(u['username'], 'status.user.username');
  if (u['uid'] !== undefined) user.uid = string(u['uid'], 'status.user.uid');
  if (u['groups'] !== undefined && u['groups'] !== null) user.groups = stringList(u['groups'], 'status.user.groups');
  const extra = u['extra'];
  if (extra !== undefined && extra !== null) {
    if (typeof extra !== 'object' || Array.isArray(extra)) throw malformed('status.user.extra');
    const values = extra as Record<string, unknown>;
    for (const key of Object.keys(values)) {
      // Go writes a nil value list as null.
      if (values[key] === null) values[key] = [];
      else stringList(values[key], 'status.user.extra');
    }
    user.extra = values as Record<string, readonly string[]>;
  }
  return user;
}

function string(value: unknown, what: string): string {
  if (typeof value !== 'string') throw malformed(what);
  return value;
}

function stringList(value: unknown, what: string): readonly string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw malformed(what);
  return value as string[];
}

function malformed(what: string): KubeApiError {
  return new KubeApiError(`TokenReview: malformed answer (${what})`);
}
