// No secret reaches a log line, at debug level: not an injected literal credential, not the API key that
// authenticated the workload (nor a wrong one), not a service-account token, Vault token, cookie or query key
// the workload sent, on allows, denies, 401s and unknown hosts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const INJECTED = 'sk-live-LITERAL-0123456789';
const API_KEY = 'client-api-key-XYZ-123456';
const WRONG_API_KEY = 'wrong-api-key-NOTVALID-999';
// Shaped like a projected service-account token (header.payload.signature).
const SA_TOKEN =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVhbS1hOmFwcCJ9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0';
const VAULT_TOKEN = 'hvs.CAESIVaultTokenSecret0001';
const COOKIE_SECRET = 'cookie-secret-value-42';
const QUERY_SECRET = 'query-secret-777';
const SECRETS = [INJECTED, API_KEY, WRONG_API_KEY, SA_TOKEN, VAULT_TOKEN, COOKIE_SECRET, QUERY_SECRET];

let server: TestServer;

beforeAll(async () => {
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-keys-'));
  const keyFile = path.join(keyDir, 'keys.yaml');
  fs.writeFileSync(keyFile, `- key: ${API_KEY}\n  name: team-a\n`);
  const policy = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: vendor
spec:
  hosts: [api.vendor.example]
  authentication:
    team-keys:
      apiKey:
        file: ${keyFile}
      credentials:
        customHeader:
          name: x-api-key
  authorization:
    get-only:
      expression: request.method == "GET"
  response:
    success:
      headers:
        authorization: '"Bearer ${INJECTED}"'
      removeHeaders: [x-api-key]
`;
  server = await startTestServer({ files: { 'vendor.yaml': policy }, config: { logLevel: 'debug', decisionLog: 'all' } });
});

afterAll(async () => {
  await server?.close();
});

const workloadHeaders = (apiKey: string) => ({
  'x-api-key': apiKey,
  authorization: `Bearer ${SA_TOKEN}`,
  'x-vault-token': VAULT_TOKEN,
  cookie: `session=${COOKIE_SECRET}`,
  'x-request-id': 'req-123',
});

describe('secrets in logs', () => {
  it('appear in no log line at debug level', async () => {
    const c = server.client;
    const allowed = await c.check({ host: 'api.vendor.example', path: `/v1/models?api_key=${QUERY_SECRET}`, headers: workloadHeaders(API_KEY) });
    const denied = await c.check({ host: 'api.vendor.example', method: 'POST', path: '/v1/models', headers: workloadHeaders(API_KEY) });
    const unauthenticated = await c.check({ host: 'api.vendor.example', path: '/v1/models', headers: workloadHeaders(WRONG_API_KEY) });
    const unknownHost = await c.check({ host: 'elsewhere.example', path: `/?api_key=${QUERY_SECRET}`, headers: workloadHeaders(API_KEY) });
    const raw = await c.check({ host: 'api.vendor.example', path: '/v1/models', headers: workloadHeaders(API_KEY), rawHeaders: true });

    // The checks did what the test means them to do: the secret is really in play.
    expect(allowed.allowed).toBe(true);
    expect(allowed.headers.find((h) => h.key === 'authorization')?.value).toBe(`Bearer ${INJECTED}`);
    expect(denied.httpStatus).toBe(403);
    expect(unauthenticated.httpStatus).toBe(401);
    expect(unknownHost.httpStatus).toBe(403);
    expect(raw.allowed).toBe(true);

    // Log lines are written asynchronously by pino; wait for all five decisions.
    const decisions = () => server.logs.filter((l) => l.includes('"msg":"decision"'));
    for (let i = 0; i < 100 && decisions().length < 5; i++) await new Promise((r) => setTimeout(r, 10));
    expect(decisions()).toHaveLength(5);
    // Debug detail is there (header names), so the test looks at debug output, not an empty log.
    const first = JSON.parse(decisions()[0]!) as { headers?: string[]; identity?: string; injected?: string[]; requestId?: string };
    expect(first.headers).toEqual(expect.arrayContaining(['authorization', 'x-api-key', 'x-vault-token', 'cookie']));
    expect(first).toMatchObject({ identity: 'team-a', injected: ['authorization'], requestId: 'req-123' });

    for (const line of server.logs) for (const secret of SECRETS) expect(line, `a log line leaks ${secret.slice(0, 8)}…`).not.toContain(secret);
  });

  it('the logger redacts credential-named fields whoever logs them', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger('trace', sink);
    logger.debug({ headers: { authorization: `Bearer ${SA_TOKEN}`, cookie: COOKIE_SECRET, 'x-vault-token': VAULT_TOKEN } }, 'request');
    logger.debug({ request: { headers: { 'x-api-key': API_KEY } } }, 'nested');
    logger.info({ token: VAULT_TOKEN, login: { client_token: VAULT_TOKEN }, apiKey: API_KEY, credential: SA_TOKEN }, 'fields');
    expect(lines).toHaveLength(3);
    for (const line of lines) for (const secret of SECRETS) expect(line).not.toContain(secret);
    expect(lines.join('')).toContain('[redacted]');
  });
});
