// A protocol fake of HashiCorp Vault (dev mode: plain HTTP) covering what credential injection uses:
// Kubernetes auth login (verified through the fake kube-apiserver's TokenReview, as real Vault does),
// ACL policies with Vault's glob rules, KV v2 / v1 reads and token lookup-self.
// Wire shapes follow /work/shared/reference/vault-and-kubernetes-apis.md §1–§4; the login checks follow the
// order of vault-plugin-auth-kubernetes (role → jwt → role exists → parse/validate → name → namespace → TokenReview).
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { FakeKubeApiserver } from './fake-kube-apiserver.js';

export type VaultCapability = 'create' | 'read' | 'update' | 'patch' | 'delete' | 'list' | 'sudo' | 'deny';

export interface VaultPolicyRule {
  /** Vault path pattern: a trailing `*` is a prefix match, a `+` segment matches exactly one segment. */
  path: string;
  capabilities: VaultCapability[];
}

export interface VaultKubernetesRole {
  /** `bound_service_account_names`; `*` or globs allowed. Must not be empty. */
  boundServiceAccountNames: string[];
  /** `bound_service_account_namespaces`; `*` or globs allowed. Must not be empty. */
  boundServiceAccountNamespaces: string[];
  /** Token policies; `default` is always added, as Vault does. */
  policies?: string[];
  /** Token TTL (auth.lease_duration). Default 3600. */
  ttlSeconds?: number;
  /** Role `audience`: the JWT's aud must contain it, and it is sent as the TokenReview audience. */
  audience?: string;
}

export interface FakeVaultOptions {
  /** Cluster whose TokenReview verifies logins on the default auth mounts. */
  kube: FakeKubeApiserver;
  /** Kubernetes auth mounts to enable. Default ['kubernetes']. */
  authMounts?: string[];
  /** KV v2 mounts to enable. Default ['secret'], as in dev mode. */
  kvV2Mounts?: string[];
}

export interface FakeVaultCalls {
  login: number;
  read: number;
  lookupSelf: number;
}

export type FakeVaultFailure = '500' | '503-sealed' | 'none';

/** TCP connections clients opened to the fake (counted by the server's `connection` listener). */
export interface FakeVaultConnections {
  /** Connections accepted since start (or the last resetConnectionCounts). */
  accepted: number;
  /** Connections open right now. */
  open: number;
  /** Most connections open at once since start (or the last resetConnectionCounts). */
  peakOpen: number;
}

export interface FakeVault {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** A root token (policy `root`), as dev mode prints; never expires. */
  readonly rootToken: string;
  /** Requests that reached each endpoint (counted before failure injection). */
  readonly calls: FakeVaultCalls;
  /** Enable a Kubernetes auth mount, optionally against another cluster. */
  addAuthMount(mount: string, kube?: FakeKubeApiserver): void;
  /** Create or replace a role; enables the mount if needed. */
  addRole(mount: string, name: string, role: VaultKubernetesRole): void;
  /** Create or replace an ACL policy. */
  addPolicy(name: string, rules: VaultPolicyRule[]): void;
  enableKvV2(mount: string): void;
  enableKvV1(mount: string): void;
  /** Write a secret. KV v2: a new version each call (rotation), returns it. KV v1: overwrite, returns 0. Unknown mounts become KV v2. */
  putSecret(mount: string, path: string, data: Record<string, unknown>): number;
  /** KV v2: soft-delete the latest version. KV v1: remove the secret. */
  deleteSecret(mount: string, path: string): void;
  /** Every token issued so far stops working (the root token stays). */
  expireAllTokens(): void;
  revokeToken(token: string): void;
  /** Every token this Vault has issued, including the root token, for leak searches. */
  tokensIssued(): string[];
  /** Every string leaf of every secret version ever written, for leak searches. */
  secretValues(): string[];
  setLatencyMs(ms: number): void;
  setFailure(failure: FakeVaultFailure): void;
  resetCounters(): void;
  /** Connection counts (a snapshot). */
  connections(): FakeVaultConnections;
  /** Restarts `accepted` at 0 and `peakOpen` at the connections open now. */
  resetConnectionCounts(): void;
  /** Close the listener and every open socket: connections are refused until start(). */
  stop(): Promise<void>;
  /** Listen again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_TOKEN_TTL_SECONDS = 3600;
/** KV v1 reads report the mount's default lease (768h) as a refresh hint. */
const KV_V1_LEASE_DURATION_SECONDS = 768 * 3600;
const TOKEN_REVIEW_TIMEOUT_MS = 10_000;
const MAX_BODY_BYTES = 1024 * 1024;
const INVALID_V2_PATH_WARNING =
  "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.";
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomBase62(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += BASE62[byte % BASE62.length];
  return out;
}

/** Vault's error (and success) bodies are written by json.Encoder: a trailing newline. */
class VaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors.join('; '));
  }
}

const permissionDenied = (): VaultHttpError => new VaultHttpError(403, ['permission denied']);

// ---------------------------------------------------------------------------------------------
// ACL

interface CompiledRule {
  pattern: string;
  regex: RegExp;
  capabilities: Set<VaultCapability>;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function compilePattern(pattern: string): RegExp {
  const isPrefix = pattern.endsWith('*');
  const body = isPrefix ? pattern.slice(0, -1) : pattern;
  const source = body
    .split('/')
    .map((segment) => (segment === '+' ? '[^/]*' : escapeRegex(segment)))
    .join('/');
  return new RegExp(`^${source}${isPrefix ? '.*' : ''}$`);
}

function firstWildcardIndex(pattern: string): number {
  const indices = [pattern.indexOf('+'), pattern.indexOf('*')].filter((i) => i >= 0);
  return indices.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...indices);
}

/** Vault's documented priority between two matching patterns: positive when `a` wins. */
function comparePriority(a: string, b: string): number {
  const wa = firstWildcardIndex(a);
  const wb = firstWildcardIndex(b);
  if (wa !== wb) return wa > wb ? 1 : -1;
  const ga = a.endsWith('*');
  const gb = b.endsWith('*');
  if (ga !== gb) return ga ? -1 : 1;
  const pa = a.split('/').filter((s) => s === '+').length;
  const pb = b.split('/').filter((s) => s === '+').length;
  if (pa !== pb) return pa < pb ? 1 : -1;
  if (a.length !== b.length) return a.length > b.length ? 1 : -1;
  return a === b ? 0 : a > b ? 1 : -1;
}

// ---------------------------------------------------------------------------------------------
// State

interface TokenEntry {
  id: string;
  accessor: string;
  policies: string[];
  path: string;
  meta: Record<string, string> | null;
  displayName: string;
  entityId: string;
  creationTime: number;
  ttlSeconds: number;
  /** Unix ms; undefined = never expires (root). */
  expiresAtMs: number | undefined;
  revoked: boolean;
}

interface AuthMount {
  kube: FakeKubeApiserver;
  roles: Map<string, VaultKubernetesRole>;
}

interface SecretVersion {
  data: Record<string, unknown>;
  createdTime: string;
  deletionTime: string;
  destroyed: boolean;
}

type KvMount =
  | { kind: 'v2'; secrets: Map<string, SecretVersion[]> }
  | { kind: 'v1'; secrets: Map<string, Record<string, unknown>> };

interface ServiceAccountClaims {
  namespace: string;
  name: string;
  uid: string;
  audiences: string[];
}

function trimSlashes(text: string): string {
  return text.replace(/^\/+|\/+$/g, '');
}

/** strutil.StrListContainsGlob: `*` anywhere in a bound name matches any run of characters. */
function globMatches(patterns: readonly string[], value: string): boolean {
  return patterns.some((p) => new RegExp(`^${p.split('*').map(escapeRegex).join('.*')}$`).test(value));
}

function collectStrings(value: unknown, into: string[]): void {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const v of value) collectStrings(v, into);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collectStrings(v, into);
}

/** Unverified claims, read the way the auth plugin reads them (projected or legacy flat form). */
function parseServiceAccountClaims(jwt: string): ServiceAccountClaims {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw permissionDenied();
  let header: { alg?: unknown };
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8')) as { alg?: unknown };
    claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    // cap/jwt reports "error verifying token signature: …", which the plugin maps to permission denied.
    throw permissionDenied();
  }
  const allowedAlgs = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];
  if (typeof header.alg !== 'string' || !allowedAlgs.includes(header.alg)) throw permissionDenied();
  const aud = claims['aud'];
  const audiences = Array.isArray(aud) ? aud.map(String) : typeof aud === 'string' ? [aud] : [];
  const projected = claims['kubernetes.io'];
  if (projected !== null && typeof projected === 'object') {
    const p = projected as { namespace?: unknown; serviceaccount?: { name?: unknown; uid?: unknown } };
    return {
      namespace: String(p.namespace ?? ''),
      name: String(p.serviceaccount?.name ?? ''),
      uid: String(p.serviceaccount?.uid ?? ''),
      audiences,
    };
  }
  return {
    namespace: String(claims['kubernetes.io/serviceaccount/namespace'] ?? ''),
    name: String(claims['kubernetes.io/serviceaccount/service-account.name'] ?? ''),
    uid: String(claims['kubernetes.io/serviceaccount/service-account.uid'] ?? ''),
    audiences,
  };
}

/** cap/jwt time checks with go-jose's 60 s default clock-skew leeway. */
function validateTimeClaims(jwt: string): void {
  const payload = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
    exp?: unknown;
    nbf?: unknown;
    iat?: unknown;
  };
  const leeway = 60;
  const now = Date.now() / 1000;
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const [exp, nbf, iat] = [num(payload.exp), num(payload.nbf), num(payload.iat)];
  if (exp === 0 && nbf === 0 && iat === 0) return;
  const notBefore = nbf !== 0 ? nbf : iat;
  if (notBefore !== 0 && now + leeway < notBefore) {
    throw new VaultHttpError(403, ['invalid not before (nbf) claim: token not yet valid']);
  }
  if (exp !== 0 && now - leeway > exp) {
    throw new VaultHttpError(403, ['invalid expiration time (exp) claim: token is expired']);
  }
  if (iat !== 0 && now + leeway < iat) {
    throw new VaultHttpError(403, ['invalid issued at (iat) claim: token issued in the future']);
  }
}

/** POST a TokenReview the way the auth plugin does (empty TypeMeta), trusting the cluster CA. */
function callTokenReview(
  kube: FakeKubeApiserver,
  jwt: string,
  audiences: string[],
): Promise<{ status: number; body: unknown }> {
  const spec: { token: string; audiences?: string[] } = { token: jwt };
  if (audiences.length > 0) spec.audiences = audiences;
  const payload = JSON.stringify({ metadata: { creationTimestamp: null }, spec, status: { user: {} } });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${kube.url}/apis/authentication.k8s.io/v1/tokenreviews`,
      {
        method: 'POST',
        ca: kube.caPem,
        timeout: TOKEN_REVIEW_TIMEOUT_MS,
        headers: {
          Authorization: `Bearer ${kube.reviewerToken}`,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch (err) {
            reject(err instanceof Error ? err : new Error('unparseable TokenReview response'));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('TokenReview timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

interface TokenReviewResponseBody {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string } };
}

/**
 * The setup every credential-injection test and the benchmark share: a policy reading the KV v2 mount's
 * `egress/*` secrets, and a Kubernetes auth role granting it to any ServiceAccount of `namespaces`.
 */
export function allowEgressReads(vault: FakeVault, namespaces: readonly string[], role = 'egress-workload'): void {
  vault.addPolicy('egress-read', [{ path: 'secret/data/egress/*', capabilities: ['read'] }]);
  vault.addRole('kubernetes', role, { boundServiceAccountNames: ['*'], boundServiceAccountNamespaces: [...namespaces], policies: ['egress-read'] });
}

export async function startFakeVault(options: FakeVaultOptions): Promise<FakeVault> {
  const authMounts = new Map<string, AuthMount>();
  const kvMounts = new Map<string, KvMount>();
  const policies = new Map<string, VaultPolicyRule[]>();
  const tokens = new Map<string, TokenEntry>();
  const entityIds = new Map<string, string>();
  const calls: FakeVaultCalls = { login: 0, read: 0, lookupSelf: 0 };
  let latencyMs = 0;
  let failure: FakeVaultFailure = 'none';

  const addAuthMount = (mount: string, kube: FakeKubeApiserver = options.kube): void => {
    const key = trimSlashes(mount);
    const existing = authMounts.get(key);
    authMounts.set(key, { kube, roles: existing?.roles ?? new Map() });
  };
  for (const mount of options.authMounts ?? ['kubernetes']) addAuthMount(mount);
  const enableKvV2 = (mount: string): void => {
    kvMounts.set(trimSlashes(mount), { kind: 'v2', secrets: new Map() });
  };
  const enableKvV1 = (mount: string): void => {
    kvMounts.set(trimSlashes(mount), { kind: 'v1', secrets: new Map() });
  };
  for (const mount of options.kvV2Mounts ?? ['secret']) enableKvV2(mount);

  const rootToken = `hvs.${randomBase62(24)}`;
  tokens.set(rootToken, {
    id: rootToken,
    accessor: randomBase62(24),
    policies: ['root'],
    path: 'auth/token/root',
    meta: null,
    displayName: 'root',
    entityId: '',
    creationTime: Math.floor(Date.now() / 1000),
    ttlSeconds: 0,
    expiresAtMs: undefined,
    revoked: false,
  });

  function envelope(fields: { data?: unknown; auth?: unknown; warnings?: string[]; mountType?: string; leaseDuration?: number }) {
    return {
      request_id: randomUUID(),
      lease_id: '',
      renewable: false,
      lease_duration: fields.leaseDuration ?? 0,
      data: fields.data ?? null,
      wrap_info: null,
      warnings: fields.warnings ?? null,
      auth: fields.auth ?? null,
      mount_type: fields.mountType ?? '',
    };
  }

  function liveToken(req: IncomingMessage): TokenEntry {
    const header = req.headers['x-vault-token'];
    let id = Array.isArray(header) ? header[0] : header;
    if (id === undefined || id === '') {
      const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      id = match?.[1];
    }
    const entry = id === undefined ? undefined : tokens.get(id);
    if (entry === undefined || entry.revoked) throw permissionDenied();
    if (entry.expiresAtMs !== undefined && Date.now() >= entry.expiresAtMs) throw permissionDenied();
    return entry;
  }

  function allows(token: TokenEntry, path: string, capability: VaultCapability): boolean {
    if (token.policies.includes('root')) return true;
    const merged = new Map<string, CompiledRule>();
    for (const name of token.policies) {
      for (const rule of policies.get(name) ?? []) {
        const existing = merged.get(rule.path);
        if (existing === undefined) {
          merged.set(rule.path, { pattern: rule.path, regex: compilePattern(rule.path), capabilities: new Set(rule.capabilities) });
        } else {
          for (const c of rule.capabilities) existing.capabilities.add(c);
        }
      }
    }
    const matching = [...merged.values()].filter((r) => r.regex.test(path));
    if (matching.length === 0) return false;
    const winner = matching.reduce((best, r) => (comparePriority(r.pattern, best.pattern) > 0 ? r : best));
    return !winner.capabilities.has('deny') && winner.capabilities.has(capability);
  }

  async function login(mountName: string, body: Record<string, unknown>) {
    const mount = authMounts.get(mountName);
    if (mount === undefined) throw permissionDenied();
    const roleName = typeof body['role'] === 'string' ? body['role'] : '';
    if (roleName === '') throw new VaultHttpError(400, ['missing role']);
    const jwt = typeof body['jwt'] === 'string' ? body['jwt'] : '';
    if (jwt === '') throw new VaultHttpError(400, ['missing jwt']);
    const role = mount.roles.get(roleName);
    if (role === undefined) throw new VaultHttpError(400, [`invalid role name ${JSON.stringify(roleName)}`]);

    const sa = parseServiceAccountClaims(jwt);
    if (role.audience !== undefined && role.audience.trim() !== '' && !sa.audiences.includes(role.audience)) {
      throw new VaultHttpError(403, ['invalid audience (aud) claim: audience claim does not match any expected audience']);
    }
    validateTimeClaims(jwt);
    if (!globMatches(role.boundServiceAccountNames, sa.name)) {
      throw new VaultHttpError(403, ['service account name not authorized']);
    }
    if (!globMatches(role.boundServiceAccountNamespaces, sa.namespace)) {
      throw new VaultHttpError(403, ['namespace not authorized']);
    }

    // Any TokenReview failure (transport, non-2xx, error, unauthenticated, mismatch) is "permission denied".
    const wantAudiences = role.audience !== undefined && role.audience.trim() !== '' ? [role.audience] : sa.audiences;
    let review: { status: number; body: unknown };
    try {
      review = await callTokenReview(mount.kube, jwt, wantAudiences);
    } catch {
      throw permissionDenied();
    }
    if (review.status < 200 || review.status > 206) throw permissionDenied();
    const status = (review.body as TokenReviewResponseBody).status;
    if (status === undefined || (status.error ?? '') !== '' || status.authenticated !== true) throw permissionDenied();
    const usernameParts = (status.user?.username ?? '').split(':');
    if (usernameParts.length !== 4) throw permissionDenied();
    if (usernameParts[3] !== sa.name || usernameParts[2] !== sa.namespace || status.user?.uid !== sa.uid) {
      throw permissionDenied();
    }
    if (sa.uid === '') throw new VaultHttpError(500, ['could not parse UID from claims']);

    const metadata = {
      role: roleName,
      service_account_name: sa.name,
      service_account_namespace: sa.namespace,
      service_account_secret_name: '',
      service_account_uid: sa.uid,
    };
    const tokenPolicies = [...new Set([...(role.policies ?? []), 'default'])].sort();
    const ttlSeconds = role.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    const entityKey = `${mountName}\u0000${sa.uid}`;
    const entityId = entityIds.get(entityKey) ?? randomUUID();
    entityIds.set(entityKey, entityId);
    const now = Date.now();
    const entry: TokenEntry = {
      id: `hvs.${randomBase62(90)}`,
      accessor: randomBase62(24),
      policies: tokenPolicies,
      path: `auth/${mountName}/login`,
      meta: metadata,
      displayName: `${mountName.replace(/\//g, '-')}-${sa.namespace}-${sa.name}`,
      entityId,
      creationTime: Math.floor(now / 1000),
      ttlSeconds,
      expiresAtMs: now + ttlSeconds * 1000,
      revoked: false,
    };
    tokens.set(entry.id, entry);
    return envelope({
      auth: {
        client_token: entry.id,
        accessor: entry.accessor,
        policies: tokenPolicies,
        token_policies: tokenPolicies,
        metadata,
        lease_duration: ttlSeconds,
        renewable: true,
        entity_id: entityId,
        token_type: 'service',
        orphan: true,
        mfa_requirement: null,
        num_uses: 0,
      },
    });
  }

  function lookupSelf(token: TokenEntry) {
    const nowMs = Date.now();
    const expiring = token.expiresAtMs !== undefined;
    const data: Record<string, unknown> = {
      accessor: token.accessor,
      creation_time: token.creationTime,
      creation_ttl: token.ttlSeconds,
      display_name: token.displayName,
      entity_id: token.entityId,
      expire_time: expiring ? new Date(token.expiresAtMs ?? 0).toISOString() : null,
      explicit_max_ttl: 0,
      id: token.id,
      meta: token.meta,
      num_uses: 0,
      orphan: true,
      path: token.path,
      policies: token.policies,
      ttl: expiring ? Math.max(0, Math.floor(((token.expiresAtMs ?? 0) - nowMs) / 1000)) : 0,
      type: 'service',
    };
    if (expiring) {
      data['issue_time'] = new Date(token.creationTime * 1000).toISOString();
      data['renewable'] = true;
    }
    return envelope({ data, mountType: 'token' });
  }

  function findKvMount(path: string): { name: string; mount: KvMount; rest: string } | undefined {
    let best: { name: string; mount: KvMount; rest: string } | undefined;
    for (const [name, mount] of kvMounts) {
      if ((path === name || path.startsWith(`${name}/`)) && (best === undefined || name.length > best.name.length)) {
        best = { name, mount, rest: path.slice(name.length + 1) };
      }
    }
    return best;
  }

  function kvRead(token: TokenEntry, path: string, query: URLSearchParams): { status: number; body: unknown } {
    if (!allows(token, path, 'read')) throw permissionDenied();
    const found = findKvMount(path);
    if (found === undefined) {
      throw new VaultHttpError(404, [`no handler for route ${JSON.stringify(path)}. route entry not found.`]);
    }
    const { mount, rest } = found;
    if (mount.kind === 'v1') {
      const secret = mount.secrets.get(rest);
      if (secret === undefined) throw new VaultHttpError(404, []);
      return { status: 200, body: envelope({ data: secret, mountType: 'kv', leaseDuration: KV_V1_LEASE_DURATION_SECONDS }) };
    }
    if (!rest.startsWith('data/')) {
      return { status: 404, body: envelope({ warnings: [INVALID_V2_PATH_WARNING], mountType: 'kv' }) };
    }
    const versions = mount.secrets.get(rest.slice('data/'.length));
    const requested = query.get('version');
    const versionNumber = requested === null || requested === '' ? 0 : Number(requested);
    if (!Number.isInteger(versionNumber) || versionNumber < 0) throw new VaultHttpError(400, ['invalid version']);
    if (versions === undefined || versions.length === 0) throw new VaultHttpError(404, []);
    const index = versionNumber === 0 ? versions.length : versionNumber;
    const version = versions[index - 1];
    if (version === undefined) throw new VaultHttpError(404, []);
    const metadata = {
      created_time: version.createdTime,
      custom_metadata: null,
      deletion_time: version.deletionTime,
      destroyed: version.destroyed,
      version: index,
    };
    if (version.deletionTime !== '' || version.destroyed) {
      return { status: 404, body: envelope({ data: { data: null, metadata }, mountType: 'kv' }) };
    }
    return { status: 200, body: envelope({ data: { data: version.data, metadata }, mountType: 'kv' }) };
  }

  function send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(`${JSON.stringify(body)}\n`);
  }

  async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > MAX_BODY_BYTES) throw new VaultHttpError(413, ['request body too large']);
      chunks.push(buf);
    }
    const text = Buffer.concat(chunks).toString('utf8').trim();
    if (text === '') return {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      return parsed as Record<string, unknown>;
    } catch {
      throw new VaultHttpError(400, ['failed to parse JSON input: invalid character']);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const path = url.pathname.startsWith('/v1/') ? trimSlashes(url.pathname.slice('/v1/'.length)) : undefined;
    const loginMount =
      path !== undefined && path.startsWith('auth/') && path.endsWith('/login')
        ? path.slice('auth/'.length, -'/login'.length)
        : undefined;
    const endpoint =
      loginMount !== undefined && authMounts.has(loginMount)
        ? 'login'
        : path === 'auth/token/lookup-self'
          ? 'lookupSelf'
          : path !== undefined && findKvMount(path) !== undefined
            ? 'read'
            : undefined;
    if (endpoint !== undefined) calls[endpoint] += 1;
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    if (failure === '503-sealed') throw new VaultHttpError(503, ['Vault is sealed']);
    if (failure === '500') throw new VaultHttpError(500, ['internal error']);
    if (path === undefined) throw new VaultHttpError(404, []);

    if (endpoint === 'login' && loginMount !== undefined) {
      if (method !== 'POST' && method !== 'PUT') throw new VaultHttpError(405, ['unsupported operation']);
      return send(res, 200, await login(loginMount, await readJsonBody(req)));
    }
    const token = liveToken(req);
    if (endpoint === 'lookupSelf') {
      if (method !== 'GET' && method !== 'POST') throw new VaultHttpError(405, ['unsupported operation']);
      return send(res, 200, lookupSelf(token));
    }
    if (method !== 'GET') throw new VaultHttpError(405, ['unsupported operation']);
    const result = kvRead(token, path, url.searchParams);
    send(res, result.status, result.body);
  }

  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof VaultHttpError) send(res, err.status, { errors: err.errors });
      else send(res, 500, { errors: ['internal error'] });
    });
  });
  const connectionCounts: FakeVaultConnections = { accepted: 0, open: 0, peakOpen: 0 };
  /** Sockets not yet destroyed (a destroyed one leaves `sockets` only at its asynchronous 'close'). */
  const liveSockets = (): number => [...sockets].filter((s) => !s.destroyed).length;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    connectionCounts.accepted += 1;
    connectionCounts.peakOpen = Math.max(connectionCounts.peakOpen, liveSockets());
    socket.on('close', () => sockets.delete(socket));
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fake Vault has no TCP address');
  const port = address.port;
  let listening = true;

  async function stop(): Promise<void> {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    await closed;
  }

  return {
    url: `http://127.0.0.1:${port}`,
    rootToken,
    calls,
    addAuthMount,
    addRole: (mount, name, role) => {
      if (role.boundServiceAccountNames.length === 0 || role.boundServiceAccountNamespaces.length === 0) {
        throw new Error('a Kubernetes auth role needs bound service account names and namespaces');
      }
      const key = trimSlashes(mount);
      if (!authMounts.has(key)) addAuthMount(key);
      authMounts.get(key)?.roles.set(name, { ...role });
    },
    addPolicy: (name, rules) => {
      policies.set(
        name,
        rules.map((r) => ({ path: r.path.replace(/^\/+/, ''), capabilities: [...r.capabilities] })),
      );
    },
    enableKvV2,
    enableKvV1,
    putSecret: (mount, path, data) => {
      const key = trimSlashes(mount);
      if (!kvMounts.has(key)) enableKvV2(key);
      const kv = kvMounts.get(key) as KvMount;
      const secretPath = trimSlashes(path);
      const copy = structuredClone(data);
      if (kv.kind === 'v1') {
        kv.secrets.set(secretPath, copy);
        return 0;
      }
      const versions = kv.secrets.get(secretPath) ?? [];
      versions.push({ data: copy, createdTime: new Date().toISOString(), deletionTime: '', destroyed: false });
      kv.secrets.set(secretPath, versions);
      return versions.length;
    },
    deleteSecret: (mount, path) => {
      const kv = kvMounts.get(trimSlashes(mount));
      const secretPath = trimSlashes(path);
      if (kv === undefined) return;
      if (kv.kind === 'v1') {
        kv.secrets.delete(secretPath);
        return;
      }
      const latest = kv.secrets.get(secretPath)?.at(-1);
      if (latest !== undefined && latest.deletionTime === '') latest.deletionTime = new Date().toISOString();
    },
    expireAllTokens: () => {
      const now = Date.now();
      for (const entry of tokens.values()) if (entry.expiresAtMs !== undefined) entry.expiresAtMs = now;
    },
    revokeToken: (token) => {
      const entry = tokens.get(token);
      if (entry !== undefined) entry.revoked = true;
    },
    tokensIssued: () => [...tokens.keys()],
    secretValues: () => {
      const values: string[] = [];
      for (const mount of kvMounts.values()) {
        if (mount.kind === 'v1') for (const s of mount.secrets.values()) collectStrings(s, values);
        else for (const versions of mount.secrets.values()) for (const v of versions) collectStrings(v.data, values);
      }
      return values;
    },
    setLatencyMs: (ms) => {
      latencyMs = ms;
    },
    setFailure: (next) => {
      failure = next;
    },
    resetCounters: () => {
      calls.login = 0;
      calls.read = 0;
      calls.lookupSelf = 0;
    },
    connections: () => ({ ...connectionCounts, open: liveSockets() }),
    resetConnectionCounts: () => {
      connectionCounts.accepted = 0;
      connectionCounts.peakOpen = liveSockets();
    },
    stop,
    start: async () => {
      if (listening) return;
      await listen(port);
      listening = true;
    },
    close: stop,
  };
}
