// `jwt`: verifies a JSON Web Token locally: signature against the issuer's published keys (JWKS), exp / nbf /
// iat with a small clock skew, iss, and aud. Keys come from `jwksUrl`, from OIDC discovery at `issuerUrl`, or,
// in Kubernetes mode, from the API server's /openid/v1/jwks (ServiceAccount tokens verified without one API
// call per request). The identity is the token's claims; a Kubernetes ServiceAccount token also gets the
// convenience fields and a TokenReview-shaped `user`, so policies read the same fields either way.
import fs from 'node:fs';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { hashKey, TtlLruCache, type Loaded, secretKey } from '../cache/cache.js';
import type { CheckContext } from '../pipeline/context.js';
import { andThen } from '../pipeline/maybe-async.js';
import type { Services } from '../pipeline/services.js';
import type { YNode } from '../policy/yaml-node.js';
import { challengeFor } from './credentials.js';
import type { HttpPool } from '../backends/http-pool.js';
import { getJson, jsonPool, urlProblem } from './http-json.js';
import { convenienceFields, deepFreeze, resolveBesidePolicy } from './identity-object.js';
import { JWKS_DEFAULT_REFRESH_MS, JWKS_UNKNOWN_KID_COOLDOWN_MS, jwksStoreFor, KeysUnavailableError, type KeySource } from './jwks.js';
import { kubeApiFor } from './kube-client.js';
import type { IdentityMethodFactory, IdentityOutcome } from './method.js';

/** Clock skew tolerated on exp, nbf and iat. */
export const JWT_DEFAULT_CLOCK_SKEW_SECONDS = 30;
/** Asymmetric algorithms only: never HS* (a shared secret) and never `none`. */
const DEFAULT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

const JWT_KEYS = ['issuerUrl', 'jwksUrl', 'kubernetes', 'issuer', 'audiences', 'clockSkewSeconds', 'algorithms', 'caFile', 'ttl'];

export const jwtMethod: IdentityMethodFactory = ({ config, credentials, sc }) => {
  config.checkKeys(JWT_KEYS, 'jwt');
  const services = sc.services;
  const issuerUrl = readUrl(config.get('issuerUrl'), 'issuerUrl');
  const jwksUrl = readUrl(config.get('jwksUrl'), 'jwksUrl');
  const kubernetes = config.get('kubernetes')?.bool('kubernetes: true or false') ?? false;
  const configuredIssuer = config.get('issuer')?.string('issuer');
  const audiences = config.get('audiences')?.stringList('audiences: a list of audiences') ?? [];
  const skew = readNonNegative(config.get('clockSkewSeconds'), 'clockSkewSeconds') ?? JWT_DEFAULT_CLOCK_SKEW_SECONDS;
  const refreshSeconds = readNonNegative(config.get('ttl'), 'ttl: seconds between key refreshes');
  const algorithms = config.get('algorithms')?.stringList('algorithms') ?? DEFAULT_ALGORITHMS;
  for (const a of algorithms) {
    if (!DEFAULT_ALGORITHMS.includes(a)) config.get('algorithms')?.error(`algorithm "${a}" is not allowed (use ${DEFAULT_ALGORITHMS.join(', ')})`);
  }
  const caFileNode = config.get('caFile');
  const caFileGiven = caFileNode?.string('caFile');
  const caFile = caFileGiven ? resolveBesidePolicy(caFileNode!, caFileGiven) : undefined;
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = fs.readFileSync(caFile);
    } catch (err) {
      caFileNode?.error(`cannot read caFile ${caFileGiven}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }

  const sources = [issuerUrl && 'issuerUrl', jwksUrl && 'jwksUrl', kubernetes && 'kubernetes: true'].filter(Boolean);
  if (sources.length !== 1) {
    config.error(`jwt: give exactly one key source: issuerUrl, jwksUrl or kubernetes: true${sources.length ? ` (got ${sources.join(', ')})` : ''}`);
    return undefined;
  }
  if (jwksUrl && !configuredIssuer) {
    config.error('jwt: with jwksUrl, give the expected issuer (`issuer:`): tokens are only accepted from it');
    return undefined;
  }
  if (kubernetes && caFile) config.get('caFile')?.error('jwt: in Kubernetes mode the CA comes from the kubeconfig / in-cluster config');

  const source: KeySource = kubernetes
    ? kubernetesKeySource(services)
    : issuerUrl
      ? discoveryKeySource(issuerUrl, ca, caFile)
      : urlKeySource(jwksUrl!, ca, caFile);
  const store = jwksStoreFor(services, source, {
    refreshMs: refreshSeconds ? refreshSeconds * 1000 : JWKS_DEFAULT_REFRESH_MS,
    unknownKidCooldownMs: JWKS_UNKNOWN_KID_COOLDOWN_MS,
  });

  const verdicts = jwtVerdictCache(services);
  // Everything a verdict depends on besides the token and the keys: two methods with different settings
  // never share one.
  const settings = hashKey('jwt', source.id, configuredIssuer ?? '', audiences.join('\n'), algorithms.join(','), String(skew));

  return {
    kind: 'jwt',
    challenge: challengeFor(credentials, 'Bearer'),
    authenticate(ctx): IdentityOutcome | Promise<IdentityOutcome> {
      const token = credentials.extract(ctx.view);
      if (!token) return MISSING;
      // A credential that is not JWT-shaped is not ours to judge (an API key in the same header, say).
      if (!isJwtShaped(token)) return NOT_A_JWT;
      // A verified token is verified again only when its cached verdict ends (TTL, its expiry, a key change).
      const key = `${settings}\0${store.generation}\0${secretKey(token)}`;
      return andThen(
        verdicts.getOrLoad(key, () => verify(token, ctx)),
        (v): IdentityOutcome => (v.kind === 'ok' ? { ...v, credential: token, serviceAccountToken: kubernetes } : v),
      );
    },
  };

  /** Verifies one token (signature, claims); the verdict and how long it may be cached. */
  async function verify(token: string, ctx: CheckContext): Promise<Loaded<JwtVerdict>> {
    try {
      await store.ensureLoaded(ctx);
      const issuer = configuredIssuer ?? store.issuer ?? issuerUrl;
      if (!issuer) return { value: { kind: 'unavailable', reason: `the issuer of ${source.describe} is not known yet` }, ttlMs: 0 };
      // Kubernetes mode defaults to the API server's own audience, which is its issuer.
      const expectedAudiences = audiences.length ? audiences : kubernetes ? [issuer] : undefined;
      const { payload } = await jwtVerify(token, (header, jws) => store.key(header, jws, ctx), {
        issuer,
        audience: expectedAudiences,
        algorithms,
        clockTolerance: skew,
        requiredClaims: ['exp'],
      });
      if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + skew) {
        return { value: { kind: 'invalid', reason: 'token issued in the future' }, ttlMs: JWT_REJECTION_TTL_MS };
      }
      const ttlMs = Math.min(JWT_VERDICT_TTL_MS, (payload.exp as number) * 1000 - Date.now());
      return { value: { kind: 'ok', identity: identityOf(payload), label: labelOf(payload) }, ttlMs };
    } catch (err) {
      // Keys out of reach: not remembered (the next Check tries again).
      if (err instanceof KeysUnavailableError) return { value: { kind: 'unavailable', reason: err.message }, ttlMs: 0 };
      return { value: { kind: 'invalid', reason: rejectionReason(err) }, ttlMs: JWT_REJECTION_TTL_MS };
    }
  }
};

/** How long an accepted token is trusted without verifying it again (its own expiry cuts this short). */
export const JWT_VERDICT_TTL_MS = 60_000;
/** How long a rejected token stays rejected without verifying it again. */
const JWT_REJECTION_TTL_MS = 5_000;
/** Verification is local (no backend call): a miss costs one signature check, so the cache stays small. */
const JWT_VERDICT_CACHE_ENTRIES = 10_000;

type JwtVerdict =
  | { readonly kind: 'ok'; readonly identity: Record<string, unknown>; readonly label: string }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'unavailable'; readonly reason: string };

const MISSING: IdentityOutcome = { kind: 'missing' };
const NOT_A_JWT: IdentityOutcome = { kind: 'invalid', reason: 'not a JWT' };

/** header.payload.signature: exactly two dots. */
function isJwtShaped(token: string): boolean {
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  return second > 0 && token.indexOf('.', second + 1) < 0;
}

/** The process-wide JWT verdict cache (kept across policy reloads), keyed by method settings, key set and token hash. */
function jwtVerdictCache(services: Services): TtlLruCache<JwtVerdict> {
  return services.singleton(
    'identity:jwt-verdicts',
    () => new TtlLruCache<JwtVerdict>({ name: 'jwt', maxEntries: JWT_VERDICT_CACHE_ENTRIES, observer: services.metrics.cacheObserver() }),
  );
}

function readUrl(node: YNode | undefined, what: string): string | undefined {
  const url = node?.string(what);
  if (url === undefined) return undefined;
  const problem = urlProblem(url);
  if (problem) {
    node!.error(`${what}: ${problem}`);
    return undefined;
  }
  return url.replace(/\/+$/, '');
}

function readNonNegative(node: YNode | undefined, what: string): number | undefined {
  if (!node) return undefined;
  const n = node.number(what);
  if (n !== undefined && !(n >= 0)) node.error(`${what} must be zero or more`);
  return n !== undefined && n >= 0 ? n : undefined;
}

function kubernetesKeySource(services: Services): KeySource {
  const kube = kubeApiFor(services);
  return {
    id: 'kubernetes',
    describe: 'the Kubernetes API server',
    async ready() {
      await kube.ready();
    },
    async load(signal) {
      const api = await kube.ready();
      // The issuer from discovery; the keys from the API server itself (discovery's jwks_uri is often an
      // address only reachable from inside the control plane).
      const discovery = (await api.getJson('/.well-known/openid-configuration', signal)) as { issuer?: unknown };
      const jwks = await api.getJson('/openid/v1/jwks', signal);
      return { jwks: jwks as never, issuer: typeof discovery.issuer === 'string' ? discovery.issuer : undefined };
    },
  };
}

function discoveryKeySource(issuerUrl: string, ca: Buffer | undefined, caFile: string | undefined): KeySource {
  // Made on the first fetch: a source a reload replaces before its store fetched anything costs nothing.
  let connections: HttpPool | undefined;
  const pool = (): HttpPool => (connections ??= jsonPool(ca));
  return {
    id: `issuer:${issuerUrl}|${caFile ?? ''}`,
    describe: issuerUrl,
    async load(signal) {
      const discovery = (await getJson(pool(), `${issuerUrl}/.well-known/openid-configuration`, { signal })) as {
        issuer?: unknown;
        jwks_uri?: unknown;
      };
      if (typeof discovery.issuer !== 'string' || discovery.issuer.replace(/\/+$/, '') !== issuerUrl) {
        throw new Error(`${issuerUrl}: discovery names another issuer`);
      }
      if (typeof discovery.jwks_uri !== 'string' || urlProblem(discovery.jwks_uri)) {
        throw new Error(`${issuerUrl}: discovery has no usable jwks_uri`);
      }
      const jwks = await getJson(pool(), discovery.jwks_uri, { signal });
      return { jwks: jwks as never, issuer: discovery.issuer };
    },
  };
}

function urlKeySource(jwksUrl: string, ca: Buffer | undefined, caFile: string | undefined): KeySource {
  // Made on the first fetch: a source a reload replaces before its store fetched anything costs nothing.
  let connections: HttpPool | undefined;
  const pool = (): HttpPool => (connections ??= jsonPool(ca));
  return {
    id: `jwks:${jwksUrl}|${caFile ?? ''}`,
    describe: jwksUrl,
    async load(signal) {
      return { jwks: (await getJson(pool(), jwksUrl, { signal })) as never };
    },
  };
}

interface KubernetesClaims {
  namespace?: unknown;
  serviceaccount?: { name?: unknown; uid?: unknown };
  pod?: { name?: unknown; uid?: unknown };
  node?: { name?: unknown; uid?: unknown };
}

/**
 * The claims, plus for a projected ServiceAccount token (`kubernetes.io` claim): username, namespace,
 * serviceAccount, pod, and `user` shaped like TokenReview's (username, uid, groups, extra).
 */
function identityOf(payload: JWTPayload): Record<string, unknown> {
  const k8s = payload['kubernetes.io'] as KubernetesClaims | undefined;
  if (!k8s || typeof k8s !== 'object' || typeof k8s.namespace !== 'string') return deepFreeze({ ...payload });
  const namespace = k8s.namespace;
  const serviceAccount = typeof k8s.serviceaccount?.name === 'string' ? k8s.serviceaccount.name : '';
  const username = serviceAccount ? `system:serviceaccount:${namespace}:${serviceAccount}` : (payload.sub ?? '');
  const extra: Record<string, string[]> = {};
  if (typeof payload.jti === 'string') extra['authentication.kubernetes.io/credential-id'] = [`JTI=${payload.jti}`];
  if (typeof k8s.node?.name === 'string') extra['authentication.kubernetes.io/node-name'] = [k8s.node.name];
  if (typeof k8s.node?.uid === 'string') extra['authentication.kubernetes.io/node-uid'] = [k8s.node.uid];
  if (typeof k8s.pod?.name === 'string') extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
  if (typeof k8s.pod?.uid === 'string') extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
  const user: Record<string, unknown> = {
    username,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    extra,
  };
  if (typeof k8s.serviceaccount?.uid === 'string') user['uid'] = k8s.serviceaccount.uid;
  return deepFreeze({
    ...payload,
    ...convenienceFields(username),
    pod: typeof k8s.pod?.name === 'string' ? k8s.pod.name : '',
    user: 'user' in payload ? payload['user'] : user,
  });
}

function labelOf(payload: JWTPayload): string {
  return typeof payload.sub === 'string' && payload.sub ? payload.sub : 'jwt subject';
}

/** A short, secret-free reason for a rejected token. */
function rejectionReason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return 'token audience not accepted';
      case 'iss':
        return 'token issuer not accepted';
      case 'nbf':
        return 'token not valid yet';
      case 'exp':
        return 'token has no valid expiry';
      default:
        return `token claim "${err.claim}" not accepted`;
    }
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'token signed by an unknown key';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature invalid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  return 'malformed token';
}
