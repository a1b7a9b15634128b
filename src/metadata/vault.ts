// `vault`: the first-class Vault source. Logs in with Kubernetes auth as the calling workload (its own SA
// token by default), reads a KV v2 (or v1) secret at a CEL path and exposes it at auth.metadata.<name>:
//   {data: {...the secret's keys...}, version: 3, metadata: {...KV v2 metadata...}, path: "egress/team-a/client"}
//
// Caching (both caches are process-wide singletons, so they survive policy reloads):
// - Vault client tokens per workload identity (hash of Vault address, mount, role and the login JWT) until
//   shortly before their lease ends;
// - secrets per (identity, path) for `ttl` (default 60 s): a warm identity makes no Vault call at all;
// - concurrent cold Checks of one identity coalesce into one login and one read;
// - a 403 on read with a cached token drops that token and logs in again once (revoked / expired early);
// - refusals (login denied, secret missing) are remembered for a few seconds so a misconfigured workload
//   cannot turn every request into a Vault login.
// Failures decide the Check: Vault down, sealed, 5xx or slow → 503 within the deadline; login refused,
// read denied or secret missing → 403. Reasons name the path, never a token or a secret value.
import fs from 'node:fs/promises';
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import { hashKey, TtlLruCache, type Loaded, secretKey } from '../cache/cache.js';
import type { CheckContext } from '../pipeline/context.js';
import { andThen, type MaybePromise } from '../pipeline/maybe-async.js';
import { compileField, type SectionContext } from '../pipeline/section.js';
import type { Services } from '../pipeline/services.js';
import type { YNode } from '../policy/yaml-node.js';
import { readDurationMs } from './durations.js';
import { waitForLoad } from '../pipeline/deadline.js';
import type { MetadataSourceFactory, SourceOutcome } from './source.js';
import { stringLeaves, toCelValue } from './values.js';
import { VaultClient, VaultError, type KvSecret, type VaultLogin, type VaultTarget } from './vault-client.js';

/** Where the Kubernetes auth login JWT comes from. */
type JwtSource =
  /** The token the identity stage accepted from the workload (ctx.credential). */
  | { kind: 'workload' }
  /** A projected token file, e.g. egress-authz's own ServiceAccount token, for SPIFFE/JWT callers. */
  | { kind: 'file'; path: string };

interface VaultSpec {
  readonly target: VaultTarget;
  readonly authMount: string;
  readonly role: string;
  readonly jwt: JwtSource;
  readonly kv: { mount: string; version: 1 | 2 };
  readonly path: CelProgram;
  readonly ttlMs: number;
  readonly timeoutMs: number;
}

/** A read's cached outcome: the secret, or a refusal remembered briefly. */
type SecretResult =
  | { kind: 'secret'; value: Record<string, unknown>; secrets: readonly string[] }
  | { kind: 'refused'; status: number; reason: string };

export const SERVICE_ACCOUNT_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const DEFAULT_TTL_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 2_000;
const REFUSAL_TTL_MS = 5_000;
/** Tokens are dropped this long before their lease ends (at most 10% of the lease). */
const TOKEN_EXPIRY_MARGIN_MS = 30_000;
/** A token with no lease (lease_duration 0) is still re-checked now and then. */
const UNLEASED_TOKEN_TTL_MS = 5 * 60_000;
/** Token files rotate (kubelet refreshes at 80% of their life); reading one per minute is plenty. */
const JWT_FILE_TTL_MS = 60_000;

function tokenTtlMs(login: VaultLogin): number {
  if (login.leaseMs <= 0) return UNLEASED_TOKEN_TTL_MS;
  return login.leaseMs - Math.min(TOKEN_EXPIRY_MARGIN_MS, login.leaseMs / 10);
}

interface VaultRuntime {
  readonly client: VaultClient;
  readonly tokens: TtlLruCache<VaultLogin>;
  readonly secrets: TtlLruCache<SecretResult>;
  readonly jwtFiles: TtlLruCache<string>;
}

function runtime(services: Services): VaultRuntime {
  return services.singleton(
    'metadata:vault',
    () => {
      const observer = services.metrics.cacheObserver();
      return {
        client: new VaultClient(services.metrics),
        tokens: new TtlLruCache<VaultLogin>({ name: 'vault_token', maxEntries: 10_000, observer }),
        secrets: new TtlLruCache<SecretResult>({ name: 'vault_secret', maxEntries: 10_000, observer }),
        jwtFiles: new TtlLruCache<string>({ name: 'vault_jwt_file', maxEntries: 16, observer }),
      };
    },
    // Idle pooled connections to Vault are closed with the server (they would not keep it alive anyway).
    (r) => r.client.close(),
  );
}

function readJwtSource(node: YNode | undefined, what: string): JwtSource {
  if (!node || node.isNull) return { kind: 'workload' };
  if (node.isMap) {
    node.checkKeys(['file'], what);
    const path = node.get('file')?.string(`${what}.file`);
    if (!path) node.error(`${what}: give {file: /path/to/token}`);
    return { kind: 'file', path: path ?? SERVICE_ACCOUNT_TOKEN_FILE };
  }
  const text = node.string(`${what}: workload, serviceAccount or {file: PATH}`);
  if (text === 'serviceAccount') return { kind: 'file', path: SERVICE_ACCOUNT_TOKEN_FILE };
  if (text !== undefined && text !== 'workload') node.error(`${what}: one of workload, serviceAccount, {file: PATH}`);
  return { kind: 'workload' };
}

function compileSpec(config: YNode, name: string, sc: SectionContext): VaultSpec | undefined {
  const what = `metadata "${name}".vault`;
  config.checkKeys(['addr', 'namespace', 'auth', 'kv', 'path', 'ttl', 'timeout'], what);
  const addrNode = config.get('addr');
  const addr = addrNode?.string(`${what}.addr`) ?? sc.services.config.vaultAddr;
  if (!addr) config.error(`${what}.addr is required (or start the server with --vault-addr / EGRESS_AUTHZ_VAULT_ADDR)`);
  else if (!URL.canParse(addr) || !/^https?:$/.test(new URL(addr).protocol)) (addrNode ?? config).error(`${what}.addr: expected an http(s) URL`);
  const namespace = config.get('namespace')?.string(`${what}.namespace`);

  const auth = config.get('auth');
  auth?.checkKeys(['kubernetes'], `${what}.auth`);
  const k8s = auth?.get('kubernetes');
  if (!k8s) (auth ?? config).error(`${what}.auth.kubernetes is required (the Kubernetes auth method: {role, mount?, jwt?})`);
  k8s?.checkKeys(['mount', 'role', 'jwt'], `${what}.auth.kubernetes`);
  const authMount = k8s?.get('mount')?.string(`${what}.auth.kubernetes.mount`) ?? 'kubernetes';
  const role = k8s?.get('role')?.string(`${what}.auth.kubernetes.role`);
  if (k8s && !role) k8s.error(`${what}.auth.kubernetes.role is required (the Vault role to log in with)`);
  const jwt = readJwtSource(k8s?.get('jwt'), `${what}.auth.kubernetes.jwt`);

  const kvNode = config.get('kv');
  kvNode?.checkKeys(['mount', 'version'], `${what}.kv`);
  const kvMount = kvNode?.get('mount')?.string(`${what}.kv.mount`) ?? 'secret';
  const versionNode = kvNode?.get('version');
  const kvVersion = versionNode?.number(`${what}.kv.version`) ?? 2;
  if (kvVersion !== 1 && kvVersion !== 2) versionNode?.error(`${what}.kv.version: 1 or 2`);

  const pathNode = config.get('path');
  if (!pathNode) config.error(`${what}.path is required (a CEL expression giving the secret's path under the KV mount)`);
  const path = compileField(pathNode, 'string', `${what}.path`, sc);
  const ttlMs = readDurationMs(config.get('ttl'), `${what}.ttl`, DEFAULT_TTL_MS);
  const timeoutMs = readDurationMs(config.get('timeout'), `${what}.timeout`, DEFAULT_TIMEOUT_MS);
  if (!addr || !role || !path || !k8s) return undefined;
  return {
    target: { addr, namespace },
    authMount,
    role,
    jwt,
    kv: { mount: kvMount, version: kvVersion === 1 ? 1 : 2 },
    path,
    ttlMs,
    timeoutMs,
  };
}

/** Vault errors → the Check's answer. */
function refusal(err: unknown, label: string, where: string): { status: number; reason: string } {
  if (err instanceof VaultError) {
    switch (err.failure) {
      case 'unavailable':
        return { status: 503, reason: `${label}: Vault unavailable (${err.message})` };
      case 'not-found':
        return { status: 403, reason: `${label}: no secret in Vault at ${where}` };
      case 'denied':
      case 'invalid':
        return { status: 403, reason: `${label}: ${err.message}` };
    }
  }
  return { status: 503, reason: `${label}: Vault call failed` };
}

export const vaultSource: MetadataSourceFactory = ({ name, config, cache, sc }) => {
  const label = `metadata "${name}"`;
  if (cache) {
    config.error(`${label}: the vault source caches by itself (Vault tokens per identity, secrets for "ttl"); remove "cache"`);
  }
  const compiled = compileSpec(config, name, sc);
  if (!compiled) return undefined;
  const spec: VaultSpec = compiled;
  const { client, tokens, secrets, jwtFiles } = runtime(sc.services);

  function loginJwt(ctx: CheckContext): MaybePromise<string | undefined> {
    // The workload's own credential goes to Vault only when it is a ServiceAccount token: an API key or
    // another issuer's JWT is never sent to a third party (no login → the source's usual 403).
    if (spec.jwt.kind === 'workload') return ctx.credentialIsServiceAccountToken ? ctx.credential : undefined;
    const file = spec.jwt.path;
    return andThen(
      jwtFiles.getOrLoad(file, async () => ({ value: (await fs.readFile(file, 'utf8')).trim(), ttlMs: JWT_FILE_TTL_MS })),
      (jwt) => jwt || undefined,
    );
  }

  /** One login (cached per identity) and one read, shared by every concurrent Check of the identity. */
  async function load(identityKey: string, jwt: string, path: string): Promise<Loaded<SecretResult>> {
    const where = `${spec.kv.mount}/${path}`;
    const s = spec;
    const signal = AbortSignal.timeout(s.timeoutMs);
    let fresh = false;
    const login = () =>
      tokens.getOrLoad(identityKey, async () => {
        fresh = true;
        const l = await client.loginKubernetes(s.target, s.authMount, s.role, jwt, signal);
        return { value: l, ttlMs: tokenTtlMs(l) };
      });
    const read = (l: VaultLogin): Promise<KvSecret> => client.readKv(s.target, s.kv, path, l.clientToken, signal);
    let secret: KvSecret;
    let used: VaultLogin;
    try {
      used = await login();
      try {
        secret = await read(used);
      } catch (err) {
        // A cached token Vault no longer honours (revoked, expired early): drop it and log in once more.
        if (!(err instanceof VaultError && err.status === 403) || fresh) throw err;
        if (tokens.get(identityKey) === used) tokens.delete(identityKey);
        used = await login();
        secret = await read(used);
      }
    } catch (err) {
      const r = refusal(err, label, where);
      // Refusals are remembered briefly; outages are not (the next Check tries again).
      return { value: { kind: 'refused', ...r }, ttlMs: r.status === 503 ? 0 : Math.min(REFUSAL_TTL_MS, s.ttlMs) };
    }
    const value: Record<string, unknown> = {
      data: toCelValue(secret.data),
      version: secret.version === undefined ? null : BigInt(secret.version),
      metadata: secret.metadata === undefined ? null : toCelValue(secret.metadata),
      path,
    };
    return { value: { kind: 'secret', value, secrets: [used.clientToken, ...stringLeaves(secret.data)] }, ttlMs: s.ttlMs };
  }

  /** Everything about the login but the JWT, for cache keys (the JWT's hash is added per Check). */
  const loginScope = hashKey('vault-login', spec.target.addr, spec.target.namespace ?? '', spec.authMount, spec.role);
  const readScope = `${spec.kv.mount}\0${spec.kv.version}`;

  function withJwt(ctx: CheckContext, jwt: string | undefined, path: string): MaybePromise<SourceOutcome> {
    if (!jwt) {
      return {
        kind: 'deny',
        status: 403,
        reason: `${label}: no workload token to log in to Vault with (the identity method gave none; use auth.kubernetes.jwt: serviceAccount)`,
      };
    }
    if (spec.jwt.kind === 'file') ctx.secrets.push(jwt);
    const identityKey = `${loginScope}\0${secretKey(jwt)}`;
    const readKey = `${identityKey}\0${readScope}\0${path}`;
    const cached = secrets.getOrLoad(readKey, () => load(identityKey, jwt, path));
    if (!(cached instanceof Promise)) return withSecret(ctx, cached);
    return waitForLoad(cached, ctx).then(
      (waited): SourceOutcome =>
        waited.done ? withSecret(ctx, waited.value) : { kind: 'deny', status: 503, reason: `${label}: Vault gave no answer within the deadline` },
      (): SourceOutcome => ({ kind: 'deny', status: 503, reason: `${label}: Vault call failed` }),
    );
  }

  function withSecret(ctx: CheckContext, result: SecretResult): SourceOutcome {
    if (result.kind === 'refused') return { kind: 'deny', status: result.status, reason: result.reason };
    for (const secret of result.secrets) ctx.secrets.push(secret);
    return { kind: 'ok', value: result.value };
  }

  return {
    kind: 'vault',
    fetch(ctx: CheckContext): MaybePromise<SourceOutcome> {
      let path: string;
      try {
        const p = spec.path.evaluate(ctx.activation);
        if (typeof p !== 'string' || p.trim() === '') return { kind: 'deny', status: 403, reason: `${label}: the secret path is empty` };
        path = p.trim().replace(/^\/+|\/+$/g, '');
      } catch (err) {
        return { kind: 'deny', status: 403, reason: `${label}: the secret path could not be evaluated: ${celErrorMessage(err)}` };
      }
      const jwt = loginJwt(ctx);
      if (!(jwt instanceof Promise)) return withJwt(ctx, jwt, path);
      return waitForLoad(jwt, ctx).then(
        (waited): MaybePromise<SourceOutcome> =>
          waited.done ? withJwt(ctx, waited.value, path) : { kind: 'deny', status: 503, reason: `${label}: no answer within the deadline` },
        (): SourceOutcome => ({ kind: 'deny', status: 503, reason: `${label}: the ServiceAccount token file could not be read` }),
      );
    },
  };
};
