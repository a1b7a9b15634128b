// A protocol fake of the parts of kube-apiserver that egress-authz and Vault talk to: TokenReview,
// the service-account issuer's OIDC discovery document and its JWKS. It mints real projected
// service-account tokens (RS256 and ES256) with the claim shape of a current cluster, so callers
// can verify them either through TokenReview or locally against the published keys.
// Wire shapes follow /work/shared/reference/vault-and-kubernetes-apis.md §5–§7.
import { createHash, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import { generateTestCa } from './tls.js';

export type ServiceAccountTokenAlg = 'RS256' | 'ES256';

export interface IssueTokenOptions {
  namespace: string;
  serviceAccount: string;
  /** `aud` claim; always emitted as an array. Default: [issuer]. */
  audiences?: string[];
  /**
   * Lifetime from now; negative means already expired by that many seconds. Default 3600.
   * TokenReview (like go-jose) and the fake Vault tolerate 60 s of clock skew: use ≤ -120 for a token they reject.
   */
  expiresInSeconds?: number;
  /** Signing key type. Default RS256 (the kube-apiserver default). */
  alg?: ServiceAccountTokenAlg;
  /** Pod the token is bound to; `null` omits the claim (a token not bound to a pod). Default: a stable pod. */
  pod?: { name: string; uid: string } | null;
  /** Node claim (K8s ≥1.30); `null` omits it. Default: a fixed node. */
  node?: { name: string; uid: string } | null;
  /** `jti` claim (K8s ≥1.29); `null` omits it. Default: a random UUID. */
  jti?: string | null;
  /** `nbf` override, in Unix seconds. Default: iat. */
  notBefore?: number;
  /** `iss` override, to mint a token from a foreign issuer. Default: the fake's issuer. */
  issuer?: string;
}

export interface FakeKubeApiserverOptions {
  /** Service-account issuer (`iss` and discovery `issuer`). Default https://kubernetes.default.svc.cluster.local. */
  issuer?: string;
  /** The apiserver's own audiences (--api-audiences) used when a TokenReview has no spec.audiences. Default [issuer]. */
  apiAudiences?: string[];
  /** Start with the reviewer lacking `create tokenreviews` (403 Forbidden Status). Default false. */
  forbiddenReviewer?: boolean;
  /** Require a bearer token for discovery and JWKS, as a cluster without the anonymous discovery binding. Default false. */
  discoveryRequiresAuth?: boolean;
  /** Clock skew tolerated on exp/nbf/iat, like go-jose's DefaultLeeway. Default 60. */
  clockLeewaySeconds?: number;
  /**
   * Also authenticate callers by TLS client certificate (the apiserver's x509 authenticator: the subject CN is
   * the user name), signed by a client CA of the fake's own (see issueClientCertificate). Default false.
   */
  clientCertificates?: boolean;
}

export interface FakeClientCertificate {
  certPem: string;
  keyPem: string;
}

export interface FakeConnectionStats {
  /** TCP connections accepted since start (or since resetConnectionStats). */
  opened: number;
  /** TCP connections open now. */
  open: number;
}

export interface FakeKubeApiserverCalls {
  tokenReviews: number;
  jwks: number;
  discovery: number;
}

export type FakeKubeFailure = '500' | 'none';

export interface FakeKubeApiserver {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** CA that signed the server certificate; clients must trust it. */
  readonly caPem: string;
  readonly issuer: string;
  /** Bearer token allowed to create TokenReviews; also a valid SA token for egress-authz/egress-authz. */
  readonly reviewerToken: string;
  /** Requests that reached each endpoint (counted before auth and failure injection). */
  readonly calls: FakeKubeApiserverCalls;
  issueToken(options: IssueTokenOptions): string;
  /** TokenReview rejects this token from now on (as when its pod is deleted). */
  revokeToken(token: string): void;
  /** The stable uid of a service account. */
  serviceAccountUid(namespace: string, serviceAccount: string): string;
  /** Kids currently published in the JWKS, oldest first. */
  publishedKeyIds(): string[];
  /** Kid that new tokens of this alg are signed with. */
  currentKeyId(alg: ServiceAccountTokenAlg): string;
  /** New RS256 and ES256 key pairs sign new tokens; old keys stay published. Returns the new kids. */
  rotateKeys(): { RS256: string; ES256: string };
  /** Unpublish every key that is not current; tokens signed with them stop verifying. */
  dropOldKeys(): void;
  setForbiddenReviewer(forbidden: boolean): void;
  setLatencyMs(ms: number): void;
  setFailure(failure: FakeKubeFailure): void;
  resetCounters(): void;
  /** Connections accepted and open: how many sockets a client's pool keeps. */
  connectionStats(): FakeConnectionStats;
  resetConnectionStats(): void;
  /**
   * A client certificate with subject CN `commonName`, signed by the client CA (needs `clientCertificates`).
   * The reviewer's user name (system:serviceaccount:egress-authz:egress-authz) may create TokenReviews.
   */
  issueClientCertificate(commonName: string): Promise<FakeClientCertificate>;
  /** Close the listener and every open socket: connections are refused until start(). */
  stop(): Promise<void>;
  /** Listen again on the same port. */
  start(): Promise<void>;
  /** Teardown. */
  close(): Promise<void>;
}

const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const REVIEWER_NAMESPACE = 'egress-authz';
const REVIEWER_SERVICE_ACCOUNT = 'egress-authz';
const REVIEWER_USERNAME = `system:serviceaccount:${REVIEWER_NAMESPACE}:${REVIEWER_SERVICE_ACCOUNT}`;
const DEFAULT_NODE = { name: 'kind-worker', uid: '52c81fbd-d2e9-4c7a-b45f-89df2615076b' };
const DISCOVERY_MAX_AGE_SECONDS = 3600;
const MAX_BODY_BYTES = 1024 * 1024;

interface SigningKey {
  kid: string;
  alg: ServiceAccountTokenAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

interface ProjectedClaims {
  aud: string[];
  exp: number;
  iat: number;
  iss: string;
  jti?: string;
  'kubernetes.io': {
    namespace: string;
    node?: { name: string; uid: string };
    pod?: { name: string; uid: string };
    serviceaccount: { name: string; uid: string };
  };
  nbf: number;
  sub: string;
}

/** Kubernetes derives a key id from the SHA-256 of the DER public key, base64url without padding. */
function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url');
}

function newSigningKey(alg: ServiceAccountTokenAlg): SigningKey {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid: keyIdOf(publicKey), alg, privateKey, publicKey };
}

/** A UUID derived from a name, so the same service account or pod gets the same uid in every fake. */
function stableUid(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function signatureOptions(key: KeyObject, alg: ServiceAccountTokenAlg) {
  // JWS ES256 signatures are the raw r||s concatenation, not DER.
  return alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' as const } : { key };
}

/** Go's %q on a []string: ["a" "b"]. */
function goQuotedList(values: readonly string[]): string {
  return `[${values.map((v) => JSON.stringify(v)).join(' ')}]`;
}

interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: Record<string, unknown>;
  code: number;
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): StatusBody {
  // Field order as the apiserver serialises a Status; `details` is omitempty.
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}

interface TokenReviewSpec {
  token?: string;
  audiences?: string[];
}

type ReviewOutcome =
  | { authenticated: true; user: ReviewUser; audiences: string[] }
  | { authenticated: false; error: string };

interface ReviewUser {
  username: string;
  uid: string;
  groups: string[];
  extra: Record<string, string[]>;
}

class SignatureRejected extends Error {}

export async function startFakeKubeApiserver(options: FakeKubeApiserverOptions = {}): Promise<FakeKubeApiserver> {
  const issuer = options.issuer ?? DEFAULT_ISSUER;
  const apiAudiences = options.apiAudiences ?? [issuer];
  const leeway = options.clockLeewaySeconds ?? 60;
  const tls = await generateTestCa();
  const clientCa = options.clientCertificates === true ? await generateClientCa() : undefined;

  let keys: SigningKey[] = [newSigningKey('RS256'), newSigningKey('ES256')];
  const current: Record<ServiceAccountTokenAlg, SigningKey> = {
    RS256: keys[0] as SigningKey,
    ES256: keys[1] as SigningKey,
  };
  const revoked = new Set<string>();
  const calls: FakeKubeApiserverCalls = { tokenReviews: 0, jwks: 0, discovery: 0 };
  let forbiddenReviewer = options.forbiddenReviewer ?? false;
  let latencyMs = 0;
  let failure: FakeKubeFailure = 'none';

  const serviceAccountUid = (namespace: string, serviceAccount: string): string =>
    stableUid('serviceaccount', namespace, serviceAccount);

  function issueToken(opts: IssueTokenOptions): string {
    const alg = opts.alg ?? 'RS256';
    const key = current[alg];
    const now = Math.floor(Date.now() / 1000);
    const lifetime = opts.expiresInSeconds ?? 3600;
    // An already-expired token was issued an hour before it expired, like a real stale token.
    const iat = lifetime > 0 ? now : now + lifetime - 3600;
    const node = opts.node === undefined ? DEFAULT_NODE : opts.node;
    const pod =
      opts.pod === undefined
        ? {
            name: `${opts.serviceAccount}-7d4b9c8f6-x2x9q`,
            uid: stableUid('pod', opts.namespace, opts.serviceAccount),
          }
        : opts.pod;
    const kubernetesIo: ProjectedClaims['kubernetes.io'] = {
      namespace: opts.namespace,
      ...(node === null ? {} : { node }),
      ...(pod === null ? {} : { pod }),
      serviceaccount: { name: opts.serviceAccount, uid: serviceAccountUid(opts.namespace, opts.serviceAccount) },
    };
    const jti = opts.jti === undefined ? randomUUID() : opts.jti;
    // Field order mirrors a decoded real token (§6): aud, exp, iat, iss, jti, kubernetes.io, nbf, sub.
    const claims: ProjectedClaims = {
      aud: opts.audiences ?? [issuer],
      exp: now + lifetime,
      iat,
      iss: opts.issuer ?? issuer,
      ...(jti === null ? {} : { jti }),
      'kubernetes.io': kubernetesIo,
      nbf: opts.notBefore ?? iat,
      sub: `system:serviceaccount:${opts.namespace}:${opts.serviceAccount}`,
    };
    const signingInput = `${base64urlJson({ alg, kid: key.kid })}.${base64urlJson(claims)}`;
    const signature = sign('sha256', Buffer.from(signingInput), signatureOptions(key.privateKey, alg));
    return `${signingInput}.${signature.toString('base64url')}`;
  }

  const reviewerToken = issueToken({
    namespace: REVIEWER_NAMESPACE,
    serviceAccount: REVIEWER_SERVICE_ACCOUNT,
    expiresInSeconds: 365 * 24 * 3600,
  });

  /** Decode and verify a token as the service-account authenticator does; throws a reason string. */
  function verifyServiceAccountToken(token: string): ProjectedClaims {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('');
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    let header: { alg?: unknown; kid?: unknown };
    let claims: ProjectedClaims;
    try {
      header = JSON.parse(Buffer.from(headerPart, 'base64url').toString('utf8')) as typeof header;
      claims = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8')) as ProjectedClaims;
    } catch {
      throw new Error('');
    }
    // A token from another issuer is not claimed by the service-account authenticator at all.
    if (claims.iss !== issuer) throw new Error('');
    const candidates = keys.filter((k) => k.alg === header.alg && (header.kid === undefined || k.kid === header.kid));
    const signingInput = Buffer.from(`${headerPart}.${payloadPart}`);
    const signature = Buffer.from(signaturePart, 'base64url');
    const verified = candidates.some((k) =>
      verify('sha256', signingInput, signatureOptions(k.publicKey, k.alg), signature),
    );
    if (!verified) throw new SignatureRejected('go-jose/go-jose: error in cryptographic primitive');
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp === 'number' && now > claims.exp + leeway) {
      throw new Error('service account token has expired');
    }
    if (typeof claims.nbf === 'number' && now + leeway < claims.nbf) {
      throw new Error('service account token is not valid yet');
    }
    if (typeof claims.iat === 'number' && now + leeway < claims.iat) {
      throw new Error('service account token is issued in the future');
    }
    if (revoked.has(token)) throw new Error('service account token has been invalidated');
    return claims;
  }

  function review(spec: { token: string; audiences?: string[] }): ReviewOutcome {
    let claims: ProjectedClaims;
    try {
      claims = verifyServiceAccountToken(spec.token);
    } catch (err) {
      const reason = (err as Error).message;
      return { authenticated: false, error: reason === '' ? '[invalid bearer token]' : `[invalid bearer token, ${reason}]` };
    }
    const tokenAudiences = Array.isArray(claims.aud) ? claims.aud : [String(claims.aud)];
    const requested = spec.audiences !== undefined && spec.audiences.length > 0 ? spec.audiences : apiAudiences;
    const granted = tokenAudiences.filter((aud) => requested.includes(aud));
    if (granted.length === 0) {
      return {
        authenticated: false,
        error: `[invalid bearer token, token audiences ${goQuotedList(tokenAudiences)} is invalid for the target audiences ${goQuotedList(requested)}]`,
      };
    }
    const k8s = claims['kubernetes.io'];
    // Go marshals map keys sorted; build them in that order.
    const extra: Record<string, string[]> = {};
    if (claims.jti !== undefined) extra['authentication.kubernetes.io/credential-id'] = [`JTI=${claims.jti}`];
    if (k8s.node !== undefined) {
      extra['authentication.kubernetes.io/node-name'] = [k8s.node.name];
      extra['authentication.kubernetes.io/node-uid'] = [k8s.node.uid];
    }
    if (k8s.pod !== undefined) {
      extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
    }
    return {
      authenticated: true,
      user: {
        username: `system:serviceaccount:${k8s.namespace}:${k8s.serviceaccount.name}`,
        uid: k8s.serviceaccount.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${k8s.namespace}`, 'system:authenticated'],
        extra,
      },
      audiences: granted,
    };
  }

  function publicJwk(key: SigningKey): Record<string, string> {
    const jwk: JsonWebKey = key.publicKey.export({ format: 'jwk' });
    // go-jose's field order: use, kty, kid, (crv,) alg, then key material.
    if (key.alg === 'RS256') {
      return { use: 'sig', kty: 'RSA', kid: key.kid, alg: 'RS256', n: String(jwk.n), e: String(jwk.e) };
    }
    return { use: 'sig', kty: 'EC', kid: key.kid, crv: 'P-256', alg: 'ES256', x: String(jwk.x), y: String(jwk.y) };
  }

  function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
    res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private' });
    res.end(`${JSON.stringify(body)}\n`);
  }

  function sendStatus(res: ServerResponse, status: StatusBody): void {
    sendJson(res, status.code, status);
  }

  const unauthorized = (): StatusBody => statusBody(401, 'Unauthorized', 'Unauthorized');
  const forbiddenTokenReview = (username: string): StatusBody =>
    statusBody(
      403,
      'Forbidden',
      `tokenreviews.authentication.k8s.io is forbidden: User "${username}" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope`,
      { group: 'authentication.k8s.io', kind: 'tokenreviews' },
    );

  /** The user a verified client certificate names (its subject CN), when client certificates are enabled. */
  function clientCertificateUserOf(req: IncomingMessage): string | undefined {
    if (clientCa === undefined) return undefined;
    const socket = req.socket as TLSSocket;
    if (!socket.authorized) return undefined;
    const cn = socket.getPeerCertificate().subject?.CN;
    return typeof cn === 'string' && cn !== '' ? cn : undefined;
  }

  function bearerOf(req: IncomingMessage): string | undefined {
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)$/i.exec(header);
    return match?.[1];
  }

  function isAuthenticatedCaller(req: IncomingMessage): boolean {
    const token = bearerOf(req);
    if (token === undefined) return false;
    if (token === reviewerToken) return true;
    return review({ token }).authenticated;
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > MAX_BODY_BYTES) throw new Error('request body too large');
      chunks.push(buf);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handleTokenReview(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const certificateUser = clientCertificateUserOf(req);
    const caller = certificateUser === REVIEWER_USERNAME ? reviewerToken : bearerOf(req);
    if (caller === undefined) {
      return sendStatus(res, certificateUser === undefined ? unauthorized() : forbiddenTokenReview(certificateUser));
    }
    if (caller !== reviewerToken) {
      // Another valid service account is authenticated but lacks system:auth-delegator.
      const other = review({ token: caller });
      return sendStatus(res, other.authenticated ? forbiddenTokenReview(other.user.username) : unauthorized());
    }
    if (forbiddenReviewer) {
      return sendStatus(res, forbiddenTokenReview(`system:serviceaccount:${REVIEWER_NAMESPACE}:${REVIEWER_SERVICE_ACCOUNT}`));
    }
    let body: { kind?: unknown; apiVersion?: unknown; spec?: TokenReviewSpec };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      return sendStatus(res, statusBody(400, 'BadRequest', 'the body of the request was in an unknown format'));
    }
    // Both the typed form (kubectl, client libraries) and Vault's empty-TypeMeta form are accepted.
    if (
      (body.kind !== undefined && body.kind !== 'TokenReview') ||
      (body.apiVersion !== undefined && body.apiVersion !== 'authentication.k8s.io/v1')
    ) {
      return sendStatus(res, statusBody(400, 'BadRequest', 'the body of the request was in an unknown format'));
    }
    const token = typeof body.spec?.token === 'string' ? body.spec.token : '';
    if (token === '') {
      return sendStatus(
        res,
        statusBody(400, 'BadRequest', 'token is required for TokenReview in authentication'),
      );
    }
    const audiences = Array.isArray(body.spec?.audiences) ? body.spec.audiences.map(String) : undefined;
    const spec: { token: string; audiences?: string[] } = { token };
    if (audiences !== undefined && audiences.length > 0) spec.audiences = audiences;
    const outcome = review(spec);
    const status =
      outcome.authenticated
        ? { authenticated: true, user: outcome.user, audiences: outcome.audiences }
        : { user: {}, error: outcome.error };
    sendJson(res, 201, {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status,
    });
  }

  function sendDiscovery(res: ServerResponse, body: unknown, contentType: string): void {
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': `public, max-age=${DISCOVERY_MAX_AGE_SECONDS}` });
    res.end(JSON.stringify(body));
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://fake').pathname;
    const method = req.method ?? 'GET';
    const endpoint =
      path === '/apis/authentication.k8s.io/v1/tokenreviews'
        ? 'tokenReviews'
        : path === '/openid/v1/jwks'
          ? 'jwks'
          : path === '/.well-known/openid-configuration'
            ? 'discovery'
            : undefined;
    if (endpoint !== undefined) calls[endpoint] += 1;
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    if (failure === '500') {
      return sendStatus(
        res,
        statusBody(500, 'InternalError', 'Internal error occurred: injected failure', {
          causes: [{ message: 'injected failure' }],
        }),
      );
    }
    if (endpoint === undefined) {
      return sendStatus(res, statusBody(404, 'NotFound', 'the server could not find the requested resource', {}));
    }
    const allowed = endpoint === 'tokenReviews' ? 'POST' : 'GET';
    if (method !== allowed) {
      return sendStatus(res, statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {}));
    }
    if (endpoint === 'tokenReviews') return handleTokenReview(req, res);
    if (options.discoveryRequiresAuth === true && !isAuthenticatedCaller(req)) {
      return sendStatus(res, unauthorized());
    }
    if (endpoint === 'jwks') {
      return sendDiscovery(res, { keys: keys.map(publicJwk) }, 'application/jwk-set+json');
    }
    const algs = [...new Set(keys.map((k) => k.alg))].sort();
    sendDiscovery(
      res,
      {
        issuer,
        jwks_uri: `${url}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: algs,
      },
      'application/json',
    );
  }

  const sockets = new Set<Socket>();
  let connectionsOpened = 0;
  const clientAuth = clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false, ca: clientCa.caPem };
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem, ...clientAuth }, (req, res) => {
    route(req, res).catch(() => {
      if (!res.headersSent) sendStatus(res, statusBody(500, 'InternalError', 'Internal error occurred'));
      else res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    connectionsOpened += 1;
    sockets.add(socket);
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
  if (address === null || typeof address === 'string') throw new Error('fake kube-apiserver has no TCP address');
  const port = address.port;
  const url = `https://127.0.0.1:${port}`;
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
    url,
    caPem: tls.caPem,
    issuer,
    reviewerToken,
    calls,
    issueToken,
    revokeToken: (token) => {
      revoked.add(token);
    },
    serviceAccountUid,
    publishedKeyIds: () => keys.map((k) => k.kid),
    currentKeyId: (alg) => current[alg].kid,
    rotateKeys: () => {
      current.RS256 = newSigningKey('RS256');
      current.ES256 = newSigningKey('ES256');
      keys = [...keys, current.RS256, current.ES256];
      return { RS256: current.RS256.kid, ES256: current.ES256.kid };
    },
    dropOldKeys: () => {
      keys = [current.RS256, current.ES256];
    },
    setForbiddenReviewer: (forbidden) => {
      forbiddenReviewer = forbidden;
    },
    setLatencyMs: (ms) => {
      latencyMs = ms;
    },
    setFailure: (next) => {
      failure = next;
    },
    resetCounters: () => {
      calls.tokenReviews = 0;
      calls.jwks = 0;
      calls.discovery = 0;
    },
    connectionStats: () => ({ opened: connectionsOpened, open: sockets.size }),
    resetConnectionStats: () => {
      connectionsOpened = 0;
    },
    issueClientCertificate: async (commonName) => {
      if (clientCa === undefined) throw new Error('start the fake with clientCertificates: true');
      return issueClientCertificate(clientCa, commonName);
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

interface ClientCa {
  caPem: string;
  caKeyPem: string;
}

const TEN_MINUTES_MS = 10 * 60 * 1000;
const ONE_DAY_MS = 24 * 60 * 60 * 1000;

/** A CA for client certificates only (the apiserver's --client-ca-file). */
async function generateClientCa(): Promise<ClientCa> {
  const ca = await generate([{ name: 'commonName', value: 'fake kube-apiserver client CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - TEN_MINUTES_MS),
    notAfterDate: new Date(Date.now() + ONE_DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { caPem: ca.cert, caKeyPem: ca.private };
}

async function issueClientCertificate(ca: ClientCa, commonName: string): Promise<FakeClientCertificate> {
  const leaf = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - TEN_MINUTES_MS),
    notAfterDate: new Date(Date.now() + ONE_DAY_MS),
    ca: { key: ca.caKeyPem, cert: ca.caPem },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { certPem: leaf.cert, keyPem: leaf.private };
}
