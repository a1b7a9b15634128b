// The Kubernetes API over node:https (node:http for a plain-HTTP `kubectl proxy`), for the configurations
// kube-config.ts understands: a TokenReview POST and authenticated GETs, JSON in and out, through one bounded
// keep-alive pool. @kubernetes/client-node is not loaded for this path (importing it costs ~70 MiB of RSS).
import http from 'node:http';
import https from 'node:https';
import {
  httpStatusError,
  isStaleConnection,
  KubeApiError,
  networkError,
  TOKEN_REVIEW_PATH,
  type OwnedKubeApi,
  type TokenReviewStatus,
} from './kube-api.js';
import type { KubeConnection } from './kube-config.js';

/**
 * At most this many connections to the API server. HTTP/1.1 carries one request per connection at a time, so
 * without a bound a burst of N new identities opens N TLS connections at once (106 in the cold-burst
 * benchmark): a handshake each on both sides, N sockets held open afterwards, and N requests landing together
 * on the API server's priority-and-fairness seats. With a bound the burst queues here and runs on warm
 * connections; a TokenReview takes milliseconds, so 32 at a time serve over a thousand reviews per second
 * while staying far below the API server's default in-flight limits.
 */
export const KUBE_API_MAX_SOCKETS = 32;
/**
 * An idle pooled connection is closed after this long, before servers and load balancers in front of the
 * API server usually drop idle connections (a connection they drop is only found dead on its next use).
 */
const IDLE_SOCKET_TIMEOUT_MS = 30_000;
/** Larger answers are refused (a list of Secrets is the largest thing we read). */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** A failure on a reused keep-alive connection before any answer: safe to send once more on a fresh one. */
class StaleConnectionError extends KubeApiError {}

export class HttpKubeApi implements OwnedKubeApi {
  readonly server: string;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;

  constructor(private readonly connection: KubeConnection) {
    this.server = connection.server;
    // Relative paths resolve under the server URL, which may carry a path prefix (API proxies such as Rancher's).
    this.base = new URL(connection.server.endsWith('/') ? connection.server : `${connection.server}/`);
    const pool: http.AgentOptions = {
      keepAlive: true,
      maxSockets: KUBE_API_MAX_SOCKETS,
      maxFreeSockets: KUBE_API_MAX_SOCKETS,
      timeout: IDLE_SOCKET_TIMEOUT_MS,
      scheduling: 'lifo',
    };
    if (this.base.protocol === 'https:') {
      const tls = connection.tls;
      this.agent = new https.Agent({
        ...pool,
        ...(tls ? { secureContext: tls.secureContext, rejectUnauthorized: tls.rejectUnauthorized } : {}),
        ...(tls?.serverName ? { servername: tls.serverName } : {}),
      });
      this.request = https.request;
    } else {
      this.agent = new http.Agent(pool);
      this.request = http.request;
    }
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
    this.agent.destroy();
  }

  private async send(method: 'GET' | 'POST', pathAndQuery: string, body: string | undefined, signal: AbortSignal, what: string): Promise<unknown> {
    let authorization: string | undefined;
    try {
      authorization = await this.connection.authorization.header();
    } catch (err) {
      throw err instanceof KubeApiError ? new KubeApiError(`${what}: ${err.message}`) : networkError(what, err);
    }
    const url = new URL(pathAndQuery.replace(/^\/+/, ''), this.base);
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json', 'user-agent': 'egress-authz' };
    if (authorization) headers['authorization'] = authorization;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    try {
      return await this.once(url, method, headers, body, signal, what);
    } catch (err) {
      // A pooled connection the server closed while idle fails on reuse. Neither a TokenReview nor a GET
      // changes anything on the server, so one more attempt (on a new connection) is safe.
      if (!(err instanceof StaleConnectionError) || signal.aborted) throw err;
      return this.once(url, method, headers, body, signal, what);
    }
  }

  private once(url: URL, method: string, headers: http.OutgoingHttpHeaders, body: string | undefined, signal: AbortSignal, what: string): Promise<unknown> {
    if (signal.aborted) return Promise.reject(new KubeApiError(`${what}: no answer in time`));
    return new Promise<unknown>((resolvePromise, rejectPromise) => {
      // node:http reports the abort of a request still queued for a pooled connection only once a connection
      // frees up: answer the abort at once ourselves (the request is dropped from the queue then).
      const onAbort = () => rejectPromise(new KubeApiError(`${what}: no answer in time`));
      signal.addEventListener('abort', onAbort, { once: true });
      const resolve = (value: unknown) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(value);
      };
      const reject = (err: KubeApiError) => {
        signal.removeEventListener('abort', onAbort);
        rejectPromise(err);
      };
      const req = this.request(url, { method, headers, agent: this.agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            reject(new KubeApiError(`${what}: answer larger than ${MAX_ANSWER_BYTES} bytes`));
            res.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => reject(networkError(what, err)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status < 200 || status > 299) {
            reject(httpStatusError(what, status, text));
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new KubeApiError(`${what}: the answer is not JSON`, status));
          }
        });
      });
      req.on('error', (err) => {
        const described = networkError(what, err);
        reject(req.reusedSocket && isStaleConnection(err) ? new StaleConnectionError(described.message) : described);
      });
      req.end(body);
    });
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
