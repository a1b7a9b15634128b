// A minimal OIDC issuer on loopback (plain HTTP, which egress-authz accepts only for loopback): discovery at
// /.well-known/openid-configuration naming itself as issuer, its keys at /jwks, tokens signed with jose.
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

type Alg = 'RS256' | 'ES256';

interface Key {
  kid: string;
  alg: Alg;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface OidcIssuer {
  readonly url: string;
  readonly calls: { discovery: number; jwks: number };
  /** A signed token; claims default to iss = this issuer, iat/nbf = now, exp = now + 1h. */
  sign(claims: JWTPayload, opts?: { alg?: Alg; kid?: string; exp?: number }): Promise<string>;
  /** Adds a new published key (new tokens of that alg use it) and returns its kid. */
  rotate(alg: Alg): Promise<string>;
  /** A key that signs but is never published (tokens naming it have an unknown kid). */
  unpublishedKey(alg: Alg): Promise<string>;
  stop(): Promise<void>;
}

let kidCounter = 0;

async function newKey(alg: Alg): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `k${++kidCounter}-${alg}`;
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
  const published: Key[] = [await newKey('RS256'), await newKey('ES256')];
  const unpublished: Key[] = [];
  const current: Record<Alg, Key> = { RS256: published[0]!, ES256: published[1]! };
  const calls = { discovery: 0, jwks: 0 };
  let url = '';
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const send = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') {
      calls.discovery++;
      return send({ issuer: url, jwks_uri: `${url}/jwks`, id_token_signing_alg_values_supported: ['RS256', 'ES256'] });
    }
    if (req.url === '/jwks') {
      calls.jwks++;
      return send({ keys: published.map((k) => k.publicJwk) });
    }
    res.writeHead(404).end();
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  url = `http://127.0.0.1:${address.port}`;

  return {
    url,
    calls,
    async sign(claims, opts = {}) {
      const alg = opts.alg ?? 'RS256';
      const key = opts.kid ? [...published, ...unpublished].find((k) => k.kid === opts.kid)! : current[alg];
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: url, iat: now, nbf: now, exp: opts.exp ?? now + 3600, ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid })
        .sign(key.privateKey);
    },
    async rotate(alg) {
      const k = await newKey(alg);
      published.push(k);
      current[alg] = k;
      return k.kid;
    },
    async unpublishedKey(alg) {
      const k = await newKey(alg);
      unpublished.push(k);
      return k.kid;
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
