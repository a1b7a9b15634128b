// The examples in examples/ratelimit load and do what their comments say.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rateLimiter } from '../../src/ratelimit/limiter.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../examples/ratelimit');
const T0 = 1_700_000_000_000;
const AI_WORKLOAD = 'spiffe://cluster.local/ns/ai-workloads/sa/chatbot';

let server: TestServer;
let now = T0;

beforeAll(async () => {
  server = await startTestServer({ policiesDir: EXAMPLES });
  rateLimiter(server.app.services).now = () => now;
});
afterAll(() => server.close());

describe('examples/ratelimit', () => {
  it('openai-kuadrant.yaml: 100 per minute per ServiceAccount; other namespaces are refused before counting', async () => {
    const request = { host: 'api.openai.com', method: 'POST', path: '/v1/chat/completions', principal: AI_WORKLOAD };
    let allowed = 0;
    for (let i = 0; i < 101; i++) if ((await server.client.check(request)).allowed) allowed++;
    expect(allowed).toBe(100);
    expect((await server.client.check(request)).httpStatus).toBe(429);
    const other = await server.client.check({ ...request, principal: 'spiffe://cluster.local/ns/web/sa/frontend' });
    expect(other.httpStatus).toBe(403);
  });

  it('anthropic-native.yaml: burst cap, batch cost, and the policy`s own 429 header', async () => {
    now = T0 + 3_600_000;
    const messages = { host: 'api.anthropic.com', method: 'POST', path: '/v1/messages', principal: AI_WORKLOAD };
    const first = await server.client.check(messages);
    expect(first.responseHeadersToAdd.find((h) => h.key === 'ratelimit')?.value).toBe(
      '"per-workload/1m";r=99;t=60, "per-workload/1s";r=9;t=1, "per-namespace-units";r=1999;t=3600, "daily-cap";r=4999;t=86400',
    );
    const batch = await server.client.check({ ...messages, path: '/v1/messages/batches' });
    expect(batch.responseHeadersToAdd.find((h) => h.key === 'ratelimit')?.value).toContain('"per-namespace-units";r=1949;');
    for (let i = 0; i < 8; i++) await server.client.check(messages);
    const burst = await server.client.check(messages);
    expect(burst.httpStatus).toBe(429);
    expect(burst.headers.find((h) => h.key === 'x-egress-limit')?.value).toBe('anthropic');
    expect(burst.headers.find((h) => h.key === 'retry-after')?.value).toBe('1');
  });
});
