// Token budgets when the shared Redis is down: each budget's failureMode decides the Check; the usage of
// responses that cannot be debited is counted in a metric (and never blocks ext_proc's answers).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisRateLimitStore } from '../../src/ratelimit/redis-store.js';
import { rateLimiter } from '../../src/ratelimit/limiter.js';
import { extProcService } from '../../src/extproc/service.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { ExtProcClient, chunked, replayResponse } from '../extproc/ext-proc-client.js';
import { openaiChatJson } from '../extproc/fixtures.js';

const POLICY = (host: string, failureMode: string) => `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: ${host.split('.')[0]}}
spec:
  hosts: [${host}]
  authentication:
    mesh: {spiffe: {}}
  tokenBudgets:
    budgets:
      hourly:
        limit: 1000
        window: 1h
        counters: [auth.identity.username]
        failureMode: ${failureMode}
`;

let redis: RedisServerHandle;
let server: TestServer;
let processor: ExtProcClient;

beforeAll(async () => {
  redis = await startRedisServer();
  server = await startTestServer({
    files: { 'open.yaml': POLICY('open.example', 'allow'), 'closed.yaml': POLICY('closed.example', 'deny') },
    config: { redisUrl: redis.url },
  });
  processor = new ExtProcClient(server.addr);
  const store = rateLimiter(server.app.services).store;
  if (store instanceof RedisRateLimitStore) await store.waitUntilUp();
  await redis.stop();
  await new Promise<void>((resolve) => {
    const poll = (): void => ((store as RedisRateLimitStore).currentState === 'down' ? resolve() : void setTimeout(poll, 10));
    poll();
  });
});
afterAll(async () => {
  processor.close();
  await server.close();
  await redis.close();
});

const principal = 'spiffe://cluster.local/ns/a/sa/b';

describe('token budgets with the store down', () => {
  it('failureMode allow: the request passes, the grant still goes out; the lost debit is counted', async () => {
    const check = await server.client.check({ host: 'open.example', principal });
    expect(check.allowed).toBe(true);
    expect(JSON.stringify(check.dynamicMetadata)).toContain('hourly');
    const body = openaiChatJson({ input: 5, output: 5 });
    const answers = await replayResponse(processor, { metadata: check.dynamicMetadata, contentType: body.contentType, chunks: chunked(body.body, 300) });
    expect(answers.length).toBeGreaterThan(1);
    await extProcService(server.app.services).drain();
    const metrics = await server.metrics.registry.metrics();
    expect(metrics).toMatch(/egress_authz_token_budget_store_failures_total\{stage="check",reason="not-connected"\} 1/);
    expect(metrics).toMatch(/egress_authz_token_budget_store_failures_total\{stage="settle",reason="not-connected"\} 1/);
    expect(server.logs.join('\n')).not.toContain(redis.url);
  });

  it('failureMode deny: 503', async () => {
    const check = await server.client.check({ host: 'closed.example', principal });
    expect(check.httpStatus).toBe(503);
    expect(check.message).toContain('"hourly"');
  });
});
