// The two Vault HTTP calls credential injection needs: Kubernetes auth login and a KV (v1/v2) read.
//
// Why not node-vault: every call here carries a *different* Vault token (one per workload identity), while
// node-vault keeps one token on the client object, so concurrent Checks for different workloads would race on
// it. Every call must also stop at its deadline (an AbortSignal per call), which node-vault's request layer
// does not take. Two endpoints with a documented wire format (reference: vault-and-kubernetes-apis.md §1–§3)
// do not justify a dependency.
//
// Why node:http(s) with a bounded pool (src/backends/http-pool.ts) and not Node's fetch: fetch's undici pool
// has no per-origin connection bound, so a burst of cold identities opens a connection per concurrent call, and
// its per-call overhead is high. `npm run bench -- cold` (1,000 distinct new identities at once, JWT identities so
// that Vault is the only backend, 5 ms fakes, 2 CPUs shared by fakes, server and load client), three runs each
// on one tree: with fetch egress-authz held 166–659 connections to Vault after the burst and spent 2.8–3.2 CPU-s
// on it (fakes 1.0–1.8); with the pool, 128 connections and 1.9 CPU-s (fakes 1.0–1.1). The pool keeps at most
// VAULT_MAX_CONNECTIONS per Vault address; calls beyond it wait in the client (each within its own deadline),
// reads before logins (see readKv). An idle connection closes after 15 s (sooner if the server's Keep-Alive
// hint says so), below the idle timeout of common proxies in front of Vault; a call that meets a connection
// the server closed meanwhile is sent once more on another.
//
// Nothing here logs. Errors carry Vault's own short error strings (e.g. "namespace not authorized"), never a
// token, a JWT or a secret value.
import type { Metrics } from '../observability/metrics.js';
import { HttpPool, PoolRequestError, type HttpPoolOptions } from '../backends/http-pool.js';

export type VaultFailure =
  /** Vault is down, sealed, slow or answered 5xx: the Check is denied with 503. */
  | 'unavailable'
  /** Vault refused (login not permitted, permission denied): 403. */
  | 'denied'
  /** No secret at the path (or its latest version is deleted): 403. */
  | 'not-found'
  /** A request Vault rejects as malformed (unknown role, bad path): 403, and a configuration problem. */
  | 'invalid';

export class VaultError extends Error {
  constructor(
    readonly failure: VaultFailure,
    /** HTTP status from Vault, when it answered. */
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export interface VaultLogin {
  readonly clientToken: string;
  /** auth.lease_duration in ms (0 = no expiry). */
  readonly leaseMs: number;
  readonly renewable: boolean;
  /** auth.metadata: role, service_account_name, service_account_namespace, ... */
  readonly metadata: Readonly<Record<string, string>>;
}

export interface KvSecret {
  readonly data: Record<string, unknown>;
  /** KV v2 version; undefined on KV v1. */
  readonly version: number | undefined;
  /** KV v2 metadata (created_time, custom_metadata, ...); undefined on KV v1. */
  readonly metadata: Record<string, unknown> | undefined;
}

export interface VaultTarget {
  /** Vault address, e.g. http://vault.vault.svc:8200 (no trailing slash needed). */
  readonly addr: string;
  /** Vault Enterprise / HCP namespace (X-Vault-Namespace), if any. */
  readonly namespace?: string;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;
/**
 * Connections per Vault address. Enough for a burst: by Little's law, 128 connections at a 20 ms login carry
 * ~6,000 calls a second, so 1,000 new identities (a login and a read each) are through well within the vault
 * source's 2 s timeout. In the cold-path benchmark (JWT identities, three runs per bound), 32 connections made
 * the burst's calls wait past that timeout (29–64% of the identities got no secret, so the retry burst was not
 * fully allowed), with 64 at most 1 Check of the burst finished within its 150 ms deadline, and 128 or 256 did
 * about as well as unbounded fetch (13–388 of 1,000 allowed in the burst, the retry fully allowed in most
 * runs: the figures swing with the load of the shared machine).
 */
export const VAULT_MAX_CONNECTIONS = 128;
const VAULT_IDLE_TIMEOUT_MS = 15_000;
/** Vault error strings we pass on must look like plain prose, not like a token or an echoed input. */
const SAFE_MESSAGE = /^[\w\s.,:;'"()/\-=[\]]{1,160}$/;

function endpoint(target: VaultTarget, apiPath: string): string {
  return `${target.addr.replace(/\/+$/, '')}/v1/${apiPath}`;
}

/** Encodes a KV path segment by segment; refuses empty, `.` and `..` segments (no path traversal). */
export function encodeKvPath(path: string): string {
  const segments = path.replace(/^\/+|\/+$/g, '').split('/');
  if (segments.length === 0 || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new VaultError('invalid', undefined, 'secret path is empty or has an empty, "." or ".." segment');
  }
  return segments.map(encodeURIComponent).join('/');
}

function vaultMessage(body: unknown): string {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors)) return '';
  const first = errors.find((e): e is string => typeof e === 'string' && e.trim() !== '');
  if (!first) return '';
  const line = first.split('\n')[0]!.trim();
  // Prose only: a long unbroken run (a Vault token, a JWT, an echoed key) is withheld even if its characters pass.
  return SAFE_MESSAGE.test(line) && !/[A-Za-z0-9_.+/=-]{24,}/.test(line) ? line : 'error details withheld';
}

function failureFor(status: number, notFound: VaultFailure): VaultFailure {
  if (status >= 500 || status === 429 || status === 412) return 'unavailable';
  if (status === 404) return notFound;
  if (status === 401 || status === 403) return 'denied';
  return 'invalid';
}

export class VaultClient {
  private readonly pool: HttpPool;

  constructor(
    private readonly metrics: Metrics,
    /** Connection pool bounds; the defaults suit production (tests lower them). */
    pool: Partial<HttpPoolOptions> = {},
  ) {
    this.pool = new HttpPool({
      maxSockets: pool.maxSockets ?? VAULT_MAX_CONNECTIONS,
      idleTimeoutMs: pool.idleTimeoutMs ?? VAULT_IDLE_TIMEOUT_MS,
    });
  }

  /** Connections open to Vault now (in use and idle), across addresses. */
  openConnections(): number {
    return this.pool.openConnections();
  }

  /** Calls waiting for a free connection now. */
  waitingCalls(): number {
    return this.pool.waiting();
  }

  /** Closes the pooled connections (at shutdown); the client stays usable and reconnects on demand. */
  close(): void {
    this.pool.destroy();
  }

  private async call(
    step: 'login' | 'read',
    url: string,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string; urgent?: boolean },
    signal: AbortSignal,
  ): Promise<{ status: number; body: unknown }> {
    try {
      return await this.metrics.timeBackend(
        'vault',
        async () => {
          const res = await this.pool.request(new URL(url), { ...init, signal, maxResponseBytes: MAX_RESPONSE_BYTES });
          let body: unknown;
          try {
            body = res.text.trim() === '' ? undefined : JSON.parse(res.text);
          } catch {
            body = undefined;
          }
          return { status: res.status, body };
        },
        (r) => (r.status >= 500 ? '5xx' : r.status >= 400 ? '4xx' : 'ok'),
      );
    } catch (err) {
      const why = err instanceof PoolRequestError ? err.reason : 'request failed';
      const status = err instanceof PoolRequestError ? err.status : undefined;
      throw new VaultError('unavailable', status || undefined, `Vault ${step} failed: ${why}`);
    }
  }

  /** POST /v1/auth/<mount>/login with {jwt, role}. */
  async loginKubernetes(
    target: VaultTarget,
    mount: string,
    role: string,
    jwt: string,
    signal: AbortSignal,
  ): Promise<VaultLogin> {
    const { status, body } = await this.call(
      'login',
      endpoint(target, `auth/${encodeKvPath(mount)}/login`),
      { method: 'POST', headers: this.headers(target, undefined), body: JSON.stringify({ jwt, role }) },
      signal,
    );
    if (status < 200 || status > 299) {
      const msg = vaultMessage(body);
      throw new VaultError(failureFor(status, 'invalid'), status, `Vault login refused (HTTP ${status}${msg ? `: ${msg}` : ''})`);
    }
    const auth = (body as { auth?: Record<string, unknown> } | undefined)?.auth;
    const clientToken = auth?.['client_token'];
    if (typeof clientToken !== 'string' || clientToken === '') {
      throw new VaultError('unavailable', status, 'Vault login answered without auth.client_token');
    }
    const lease = Number(auth?.['lease_duration'] ?? 0);
    const metadata: Record<string, string> = {};
    const md = auth?.['metadata'];
    if (md && typeof md === 'object') {
      for (const [k, v] of Object.entries(md)) if (typeof v === 'string') metadata[k] = v;
    }
    return {
      clientToken,
      leaseMs: Number.isFinite(lease) && lease > 0 ? lease * 1000 : 0,
      renewable: auth?.['renewable'] === true,
      metadata,
    };
  }

  /** GET /v1/<mount>/data/<path> (KV v2) or /v1/<mount>/<path> (KV v1) with X-Vault-Token. */
  async readKv(
    target: VaultTarget,
    kv: { mount: string; version: 1 | 2 },
    path: string,
    token: string,
    signal: AbortSignal,
  ): Promise<KvSecret> {
    const apiPath =
      kv.version === 2 ? `${encodeKvPath(kv.mount)}/data/${encodeKvPath(path)}` : `${encodeKvPath(kv.mount)}/${encodeKvPath(path)}`;
    // Urgent: a read completes an identity whose login is already done (see src/backends/http-pool.ts).
    const { status, body } = await this.call(
      'read',
      endpoint(target, apiPath),
      { method: 'GET', headers: this.headers(target, token), urgent: true },
      signal,
    );
    if (status < 200 || status > 299) {
      const msg = vaultMessage(body);
      throw new VaultError(failureFor(status, 'not-found'), status, `Vault read refused (HTTP ${status}${msg ? `: ${msg}` : ''})`);
    }
    const data = (body as { data?: unknown } | undefined)?.data;
    if (!data || typeof data !== 'object') throw new VaultError('not-found', status, 'Vault answered without data');
    if (kv.version === 1) return { data: data as Record<string, unknown>, version: undefined, metadata: undefined };
    const inner = (data as { data?: unknown }).data;
    const meta = (data as { metadata?: unknown }).metadata;
    if (!inner || typeof inner !== 'object') throw new VaultError('not-found', status, 'the secret has no data (deleted version?)');
    const metadata = meta && typeof meta === 'object' ? (meta as Record<string, unknown>) : undefined;
    const version = typeof metadata?.['version'] === 'number' ? metadata['version'] : undefined;
    return { data: inner as Record<string, unknown>, version, metadata };
  }

  private headers(target: VaultTarget, token: string | undefined): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) h['x-vault-token'] = token;
    else h['content-type'] = 'application/json';
    if (target.namespace) h['x-vault-namespace'] = target.namespace;
    return h;
  }
}
