// Test-only TLS material: a throwaway CA plus a server certificate for 127.0.0.1/localhost signed by it,
// and a fetch-shaped function that trusts that CA (Node 20's global fetch cannot take a custom CA
// without undici's Agent, which is not a dependency here).
import { request as httpsRequest } from 'node:https';
import { generate } from 'selfsigned';

export interface TestTls {
  /** PEM of the CA certificate clients must trust. */
  caPem: string;
  /** PEM of the leaf certificate for 127.0.0.1, ::1 and localhost, signed by the CA. */
  certPem: string;
  /** PEM (PKCS#8) private key of the leaf certificate. */
  keyPem: string;
}

const TEN_MINUTES_MS = 10 * 60 * 1000;
const ONE_DAY_MS = 24 * 60 * 60 * 1000;

/** A fresh CA and a loopback server certificate signed by it. EC P-256 keys keep generation fast. */
export async function generateTestCa(): Promise<TestTls> {
  // Back-date by a few minutes so a slightly skewed clock never sees a "not yet valid" certificate.
  const notBeforeDate = new Date(Date.now() - TEN_MINUTES_MS);
  const notAfterDate = new Date(Date.now() + ONE_DAY_MS);
  const ca = await generate([{ name: 'commonName', value: 'egress-authz test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { caPem: ca.cert, certPem: server.cert, keyPem: server.private };
}

/** The subset of fetch's init that fetchTrustingCa honours. */
export interface CaFetchInit {
  method?: string;
  headers?: Headers | Record<string, string>;
  body?: string;
  signal?: AbortSignal | null;
}

/** A fetch-like function over HTTPS that trusts only `caPem`. Never follows redirects. */
export type CaFetch = (url: string | URL, init?: CaFetchInit) => Promise<Response>;

/**
 * fetch over node:https with a custom CA. Usable as jose's `[customFetch]` for createRemoteJWKSet,
 * or anywhere a test needs to talk to the fake kube-apiserver.
 */
export function fetchTrustingCa(caPem: string): CaFetch {
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => {
        headers[name] = value;
      });
      const req = httpsRequest(
        url,
        // A fresh connection per request: a pooled socket from before a fake's stop() would turn
        // "connection refused" into a confusing "socket hang up".
        { method: init.method ?? 'GET', headers, ca: caPem, agent: false, signal: init.signal ?? undefined },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (value === undefined) continue;
              for (const v of Array.isArray(value) ? value : [value]) responseHeaders.append(name, v);
            }
            const status = res.statusCode ?? 500;
            const nullBodyStatus = status === 204 || status === 304;
            resolve(
              new Response(nullBodyStatus ? null : Buffer.concat(chunks), {
                status,
                statusText: res.statusMessage ?? '',
                headers: responseHeaders,
              }),
            );
          });
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
}
