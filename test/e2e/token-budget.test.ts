// Issue 10 acceptance: token budgets over real gRPC on loopback. Checks go to ext_authz; the responses
// (recorded-shape JSON and SSE bodies of OpenAI, Anthropic and Gemini) stream through ext_proc exactly as
// Envoy sends them, carrying the Check's dynamic metadata the way Envoy forwards it
// (metadata_options.forwarding_namespaces: [envoy.filters.http.ext_authz]).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisRateLimitStore } from '../../src/ratelimit/redis-store.js';
import { RateLimiter, rateLimiter } from '../../src/ratelimit/limiter.js';
import { extProcService } from '../../src/extproc/service.js';
import type { CheckResult } from '../../src/cli/check-client.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { ExtProcClient, chunked, replayResponse, type ProcessingResponse } from '../extproc/ext-proc-client.js';
import {
  anthropicJson,
  anthropicSse,
  geminiJson,
  geminiSse,
  openaiChatJson,
  openaiChatSse,
  openaiResponsesJson,
  openaiResponsesSse,
  type ProviderBody,
  type Tokens,
} from '../extproc/fixtures.js';

/** One policy per provider, identical but for its host and `provider` (none: left to detection). */
function budgetPolicy(name: string, host: string, provider?: string): string {
  return `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: ${name}}
spec:
  hosts: [${host}]
  authentication:
    mesh: {spiffe: {trustDomains: [cluster.local]}}
  tokenBudgets:
${provider ? `    provider: ${provider}\n` : ''}    budgets:
      per-workload:
        limit: 1000
        window: 1h
        counters: [auth.identity.username]
`;
}

const POLICIES = [
  budgetPolicy('openai', 'api.openai.com', 'openai'),
  budgetPolicy('anthropic', 'api.anthropic.com', 'anthropic'),
  budgetPolicy('gemini', 'generativelanguage.googleapis.com'),
  // Separate input and output budgets.
  `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: split}
spec:
  hosts: [llm.internal.example]
  authentication:
    mesh: {spiffe: {trustDomains: [cluster.local]}}
  tokenBudgets:
    budgets:
      prompt:
        limit: 1000
        window: 1h
        count: input
        counters: [auth.identity.username]
      completion:
        limit: 500
        window: 1h
        count: output
        counters: [auth.identity.username]
`,
].join('---');

const principal = (sa: string) => `spiffe://cluster.local/ns/team-a/sa/${sa}`;

/** One request through Envoy: Check, then (if allowed) its response through ext_proc. */
async function exchange(
  authz: TestServer,
  processor: ExtProcClient,
  host: string,
  sa: string,
  body: ProviderBody,
  chunkSize = 256,
): Promise<{ check: CheckResult; answers: ProcessingResponse[] }> {
  const check = await authz.client.check({ host, method: 'POST', path: '/v1/chat', principal: principal(sa) });
  if (!check.allowed) return { check, answers: [] };
  const answers = await replayResponse(processor, {
    metadata: check.dynamicMetadata,
    contentType: body.contentType,
    chunks: chunked(body.body, chunkSize),
  });
  return { check, answers };
}

/** ext_proc answered every message with "continue unchanged". */
function expectUnchanged(answers: readonly ProcessingResponse[], messages: number): void {
  expect(answers).toHaveLength(messages);
  for (const answer of answers) {
    expect(answer.immediateResponse).toBeUndefined();
    const common = (Object.values(answer)[0] as { response?: Record<string, unknown> } | undefined)?.response ?? {};
    expect(common.bodyMutation).toBeUndefined();
    expect(common.headerMutation).toBeUndefined();
    expect(common.status ?? 'CONTINUE').toBe('CONTINUE');
  }
}

describe('token budgets: one replica, the three providers', () => {
  let server: TestServer;
  let processor: ExtProcClient;
  beforeAll(async () => {
    server = await startTestServer({ files: { 'llm.yaml': POLICIES } });
    processor = new ExtProcClient(server.addr);
  });
  afterAll(async () => {
    processor.close();
    await server.close();
  });

  const providers: Array<[string, string, (t: Tokens) => ProviderBody]> = [
    ['OpenAI chat JSON', 'api.openai.com', openaiChatJson],
    ['OpenAI chat SSE', 'api.openai.com', openaiChatSse],
    ['OpenAI responses JSON', 'api.openai.com', openaiResponsesJson],
    ['OpenAI responses SSE', 'api.openai.com', openaiResponsesSse],
    ['Anthropic JSON', 'api.anthropic.com', anthropicJson],
    ['Anthropic SSE', 'api.anthropic.com', anthropicSse],
    ['Gemini JSON (detected)', 'generativelanguage.googleapis.com', geminiJson],
    ['Gemini SSE (detected)', 'generativelanguage.googleapis.com', geminiSse],
  ];

  for (const [index, [name, host, make]] of providers.entries()) {
    it(`${name}: allowed until the debited usage passes 1,000 tokens, then 429; another workload is unaffected`, async () => {
      const sa = `workload-${index}`;
      const body = make({ input: 200, output: 100 }); // 300 tokens per response
      for (let request = 1; request <= 4; request++) {
        // Before request n, (n - 1) × 300 tokens were debited: 0, 300, 600, 900 — all below 1,000.
        const { check, answers } = await exchange(server, processor, host, sa, body);
        expect(check.allowed, `request ${request}`).toBe(true);
        const chunks = Math.ceil(Buffer.byteLength(body.body) / 256);
        expectUnchanged(answers, 1 + chunks);
      }
      // 1,200 tokens debited: spent.
      const refused = await server.client.check({ host, method: 'POST', path: '/v1/chat', principal: principal(sa) });
      expect(refused.allowed).toBe(false);
      expect(refused.httpStatus).toBe(429);
      const retryAfter = Number(refused.headers.find((h) => h.key === 'retry-after')?.value);
      expect(retryAfter).toBeGreaterThan(3500);
      expect(retryAfter).toBeLessThanOrEqual(3600);
      expect(JSON.parse(refused.body)).toMatchObject({ error: 'rate_limited' });
      expect(refused.body).toContain('per-workload');

      const other = await server.client.check({ host, method: 'POST', path: '/v1/chat', principal: principal(`${sa}-other`) });
      expect(other.allowed).toBe(true);
      expect(extProcService(server.app.services).openStreams()).toBe(0);
    });
  }

  it('input and output budgets are enforced separately: output trips first', async () => {
    const sa = 'split-output';
    const body = anthropicSse({ input: 100, output: 200 });
    // After 2 responses: input 200/1000, output 400/500; after 3: input 300, output 600 → output spent.
    for (let request = 1; request <= 3; request++) {
      expect((await exchange(server, processor, 'llm.internal.example', sa, body)).check.allowed).toBe(true);
    }
    const refused = await server.client.check({ host: 'llm.internal.example', principal: principal(sa) });
    expect(refused.httpStatus).toBe(429);
    expect(refused.message).toContain('"completion"');
    expect(refused.message).not.toContain('"prompt"');
  });

  it('input and output budgets are enforced separately: input trips first', async () => {
    const sa = 'split-input';
    const body = openaiChatJson({ input: 600, output: 10 });
    for (let request = 1; request <= 2; request++) {
      expect((await exchange(server, processor, 'llm.internal.example', sa, body)).check.allowed).toBe(true);
    }
    // input 1,200/1,000 (spent), output 20/500.
    const refused = await server.client.check({ host: 'llm.internal.example', principal: principal(sa) });
    expect(refused.httpStatus).toBe(429);
    expect(refused.message).toContain('"prompt"');
    expect(refused.message).not.toContain('"completion"');
  });

  it('the grant in dynamic metadata names the caller and the budget, never the raw counter value', async () => {
    const check = await server.client.check({ host: 'api.openai.com', principal: principal('metadata-shape') });
    const text = JSON.stringify(check.dynamicMetadata);
    expect(text).toContain('spiffe://cluster.local/ns/team-a/sa/metadata-shape');
    expect(text).toContain('per-workload');
    expect(text).not.toContain('system:serviceaccount:team-a:metadata-shape');
  });
});

describe('token budgets: two replicas sharing one redis-server', () => {
  let redis: RedisServerHandle;
  let replicas: TestServer[];
  let processors: ExtProcClient[];
  beforeAll(async () => {
    redis = await startRedisServer();
    replicas = await Promise.all([0, 1].map(() => startTestServer({ files: { 'llm.yaml': POLICIES }, config: { redisUrl: redis.url, checkDeadlineMs: 2000 } })));
    processors = replicas.map((replica) => new ExtProcClient(replica.addr));
    for (const replica of replicas) {
      // The server's own Redis store, created before first use with a relaxed command timeout: the
      // production 50 ms would turn a test machine's CPU stall into a lost debit (this test is about
      // counting across replicas, not about timeouts; test/budget/store-outage.test.ts covers those).
      const services = replica.app.services;
      services.singleton(
        'ratelimit-limiter',
        () => new RateLimiter(new RedisRateLimitStore({ url: redis.url, commandTimeoutMs: 2000 }), services),
        (limiter) => limiter.store.close(),
      );
      const store = rateLimiter(services).store;
      expect(store).toBeInstanceOf(RedisRateLimitStore);
      await (store as RedisRateLimitStore).waitUntilUp();
    }
  });
  afterAll(async () => {
    for (const processor of processors) processor.close();
    await Promise.all(replicas.map((replica) => replica.close()));
    await redis.close();
  });

  it('Checks and debits spread over both replicas count against one budget', async () => {
    expect(rateLimiter(replicas[0]!.app.services).store.kind).toBe('redis');
    const body = geminiSse({ input: 150, output: 150 }); // 300 tokens
    for (let request = 0; request < 4; request++) {
      // Check on one replica, the response through the other's ext_proc.
      const authz = replicas[request % 2]!;
      const processor = processors[(request + 1) % 2]!;
      expect((await exchange(authz, processor, 'generativelanguage.googleapis.com', 'shared', body)).check.allowed).toBe(true);
    }
    for (const replica of replicas) {
      const refused = await replica.client.check({ host: 'generativelanguage.googleapis.com', principal: principal('shared') });
      expect(refused.httpStatus).toBe(429);
    }
    const other = await replicas[1]!.client.check({ host: 'generativelanguage.googleapis.com', principal: principal('shared-other') });
    expect(other.allowed).toBe(true);
  });
});
