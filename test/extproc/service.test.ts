// The ext_proc service over real gRPC streams on loopback: protocol duties (every message answered, in
// order, never a mutation), bounded state (the per-stream map is empty once streams end, however they
// end), and what is debited for malformed, truncated, huge and cancelled responses (docs/token-budgets.md).
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROCESS_PATH } from '../../src/extproc/codec.js';
import { structToJs } from '../../src/envoy/codec.js';
import { grantFromMetadata, GRANT_METADATA_KEY } from '../../src/budget/grant.js';
import { extProcService } from '../../src/extproc/service.js';
import { rateLimiter } from '../../src/ratelimit/limiter.js';
import type { CheckResult } from '../../src/cli/check-client.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { ExtProcClient, chunked, forwardedMetadata, headerMap, replayResponse } from './ext-proc-client.js';
import { anthropicSse, openaiChatJson, openaiChatSse } from './fixtures.js';

const POLICY = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: plain}
spec:
  hosts: [plain.example]
  authentication:
    mesh: {spiffe: {}}
  tokenBudgets:
    budgets:
      total:
        limit: 100000000
        window: 1h
        counters: [auth.identity.username]
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: with-fallback}
spec:
  hosts: [fallback.example]
  authentication:
    mesh: {spiffe: {}}
  tokenBudgets:
    fallback: 250
    budgets:
      total:
        limit: 100000000
        window: 1h
        counters: [auth.identity.username]
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: reserving}
spec:
  hosts: [reserve.example]
  authentication:
    mesh: {spiffe: {}}
  tokenBudgets:
    reservation: {default: 400, max: 600}
    budgets:
      total:
        limit: 1000
        window: 1h
        counters: [auth.identity.username]
      prompt:
        limit: 1000
        window: 1h
        count: input
        counters: [auth.identity.username]
`;

let server: TestServer;
let processor: ExtProcClient;
let nextWorkload = 0;

beforeAll(async () => {
  server = await startTestServer({ files: { 'budgets.yaml': POLICY } });
  processor = new ExtProcClient(server.addr);
});
afterAll(async () => {
  processor.close();
  await server.close();
});

const service = () => extProcService(server.app.services);

function until(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = (): void => (condition() ? resolve() : void setTimeout(poll, 5));
    poll();
  });
}

async function check(host: string, body?: string): Promise<CheckResult> {
  const result = await server.client.check({
    host,
    method: 'POST',
    path: '/v1/messages',
    principal: `spiffe://cluster.local/ns/test/sa/w${++nextWorkload}`,
    ...(body !== undefined ? { body } : {}),
  });
  expect(result.allowed).toBe(true);
  return result;
}

async function checkAs(host: string, workload: string, body?: string): Promise<CheckResult> {
  return server.client.check({
    host,
    method: 'POST',
    path: '/v1/messages',
    principal: `spiffe://cluster.local/ns/test/sa/${workload}`,
    ...(body !== undefined ? { body } : {}),
  });
}

/** Tokens counted now in each budget of the Check's grant (a cost-0 reservation reads without writing). */
async function used(result: CheckResult): Promise<Record<string, number>> {
  await service().drain();
  const grant = grantFromMetadata(structToJs(result.dynamicMetadata as never)[GRANT_METADATA_KEY]);
  expect(grant).toBeDefined();
  const out: Record<string, number> = {};
  for (const budget of grant!.budgets) {
    const state = await rateLimiter(server.app.services).store.debit({
      counters: [{ key: budget.key, limit: Number.MAX_SAFE_INTEGER, windowMs: budget.windowMs, cost: 0 }],
      ifRoom: true,
    });
    out[budget.name] = state.counters[0]!.used;
  }
  return out;
}

describe('protocol duties', () => {
  it('answers every message in order with CONTINUE and never a mutation', async () => {
    const result = await check('plain.example');
    const metadataContext = forwardedMetadata(result.dynamicMetadata);
    const stream = processor.open();
    const body = openaiChatJson({ input: 7, output: 5 }).body;
    const sent = [
      { requestHeaders: { headers: headerMap({ ':method': 'POST' }) }, metadataContext },
      { requestBody: { body: Buffer.from('{"model":"x"}'), endOfStream: true }, metadataContext },
      { responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) }, metadataContext },
      { responseBody: { body: Buffer.from(body.slice(0, 40)) }, metadataContext },
      { responseBody: { body: Buffer.from(body.slice(40)), endOfStream: false }, metadataContext },
      { responseTrailers: { trailers: headerMap({ 'grpc-status': '0' }) }, metadataContext },
    ];
    // All written before any answer is read: answers must still come one per message, in order.
    for (const message of sent) stream.write(message);
    const kinds: string[] = [];
    for (let i = 0; i < sent.length; i++) {
      const answer = await stream.next();
      const kind = Object.keys(answer).find((key) => key !== 'response' && key !== 'modeOverride')!;
      kinds.push(kind);
      const inner = answer[kind] as { response?: Record<string, unknown>; headerMutation?: unknown };
      expect(inner.response?.bodyMutation).toBeUndefined();
      expect(inner.response?.headerMutation).toBeUndefined();
      expect(inner.headerMutation).toBeUndefined();
    }
    expect(kinds).toEqual(['requestHeaders', 'requestBody', 'responseHeaders', 'responseBody', 'responseBody', 'responseTrailers']);
    expect((await stream.end()).code).toBe(0);
    expect(await used(result)).toEqual({ total: 12 }); // settled at the trailers
    expect(service().openStreams()).toBe(0);
  });

  it('observability mode: nothing is answered, the usage is still debited', async () => {
    const result = await check('plain.example');
    const metadataContext = forwardedMetadata(result.dynamicMetadata);
    const stream = processor.open();
    const body = anthropicSse({ input: 30, output: 70 }).body;
    stream.write({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) }, metadataContext, observabilityMode: true });
    for (const [index, chunk] of chunked(body, 100).entries()) {
      stream.write({ responseBody: { body: chunk, endOfStream: index === Math.ceil(body.length / 100) - 1 }, metadataContext, observabilityMode: true });
    }
    expect((await stream.end()).code).toBe(0);
    expect(stream.unread).toBe(0);
    expect(await used(result)).toEqual({ total: 100 });
  });

  it('a request without a grant passes through untouched, and asks Envoy to stop sending its body', async () => {
    const answers = await replayResponse(processor, {
      metadata: { fields: {} },
      contentType: 'application/json',
      chunks: chunked(openaiChatJson({ input: 1, output: 1 }).body, 200),
    });
    expect(answers[0]).toMatchObject({ responseHeaders: { response: {} }, modeOverride: {} });
    expect(answers.slice(1).every((answer) => 'responseBody' in answer)).toBe(true);
    expect(service().openStreams()).toBe(0);
  });

  it('a malformed message ends that stream with INVALID_ARGUMENT; the service goes on', async () => {
    // Raw bytes, below the codec: field 8 (metadata_context) claims more bytes than follow.
    const raw = new grpc.Client(server.addr, grpc.credentials.createInsecure());
    const call = raw.makeBidiStreamRequest(PROCESS_PATH, (b: Buffer) => b, (b: Buffer) => b, new grpc.Metadata());
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    call.write(Buffer.from([0x42, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect((await status).code).toBe(grpc.status.INVALID_ARGUMENT);
    raw.close();
    await until(() => service().openStreams() === 0);
    const after = await replayResponse(processor, { metadata: { fields: {} }, contentType: 'application/json', chunks: ['{}'] });
    expect(after).toHaveLength(2);
  });

  it('many concurrent streams: all answered, none left behind', async () => {
    const result = await check('plain.example');
    const body = openaiChatSse({ input: 3, output: 2 });
    await Promise.all(
      Array.from({ length: 40 }, () => replayResponse(processor, { metadata: result.dynamicMetadata, contentType: body.contentType, chunks: chunked(body.body, 97) })),
    );
    expect(service().openStreams()).toBe(0);
    expect(await used(result)).toEqual({ total: 200 });
  });
});

describe('what is debited when the response is not a clean usage report', () => {
  it('malformed SSE: no usage, the policy fallback is debited', async () => {
    const result = await check('fallback.example');
    const garbage = 'data: {"usage": {"prompt_tokens": 12,, broken\n\ndata: \u0000\u0001\u0002\n\nevent\x00: x\r\r\n\ndata: [DONE]\n\n';
    const answers = await replayResponse(processor, { metadata: result.dynamicMetadata, contentType: 'text/event-stream', chunks: chunked(garbage, 9) });
    expect(answers).toHaveLength(1 + Math.ceil(Buffer.byteLength(garbage) / 9));
    expect(await used(result)).toEqual({ total: 250 });
  });

  it('malformed SSE without a fallback: nothing is debited', async () => {
    const result = await check('plain.example');
    await replayResponse(processor, { metadata: result.dynamicMetadata, contentType: 'text/event-stream', chunks: ['data: {{{{\n\n', 'data: }\n\n'] });
    expect(await used(result)).toEqual({ total: 0 });
  });

  it('a non-JSON body (text/html error page) gets the fallback', async () => {
    const result = await check('fallback.example');
    await replayResponse(processor, { metadata: result.dynamicMetadata, contentType: 'text/html', chunks: ['<html>upstream</html>'] });
    expect(await used(result)).toEqual({ total: 250 });
  });

  it('an upstream error status without usage is not charged', async () => {
    const result = await check('fallback.example');
    await replayResponse(processor, { metadata: result.dynamicMetadata, status: 429, contentType: 'application/json', chunks: ['{"error":{"message":"rate limited"}}'] });
    expect(await used(result)).toEqual({ total: 0 });
  });

  it('truncated SSE (the body stops without end_of_stream and Envoy closes the stream): the usage seen so far', async () => {
    const result = await check('plain.example');
    const body = anthropicSse({ input: 120, output: 900 }, { stopAfter: 'content' }).body; // message_start seen, no message_delta
    const stream = processor.open();
    const metadataContext = forwardedMetadata(result.dynamicMetadata);
    await stream.send({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) }, metadataContext });
    for (const chunk of chunked(body, 64)) await stream.send({ responseBody: { body: chunk }, metadataContext });
    expect((await stream.end()).code).toBe(0);
    expect(await used(result)).toEqual({ total: 121 }); // input 120 + the 1 output token of message_start
    expect(service().openStreams()).toBe(0);
  });

  it('a stream cancelled midway: state dropped, the usage seen so far debited', async () => {
    const result = await check('plain.example');
    const body = anthropicSse({ input: 80, output: 500 }).body;
    const cut = body.indexOf('event: content_block_delta');
    const stream = processor.open();
    const metadataContext = forwardedMetadata(result.dynamicMetadata);
    await stream.send({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) }, metadataContext });
    await stream.send({ responseBody: { body: Buffer.from(body.slice(0, cut)) }, metadataContext });
    expect(service().openStreams()).toBeGreaterThan(0);
    stream.cancel();
    await until(() => service().openStreams() === 0);
    expect(await used(result)).toEqual({ total: 81 });
  });

  it('a stream cancelled before any usage appeared gets the fallback', async () => {
    const result = await check('fallback.example');
    const body = openaiChatSse({ input: 10, output: 10 }).body;
    const stream = processor.open();
    const metadataContext = forwardedMetadata(result.dynamicMetadata);
    await stream.send({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) }, metadataContext });
    await stream.send({ responseBody: { body: Buffer.from(body.slice(0, 200)) }, metadataContext });
    stream.cancel();
    await until(() => service().openStreams() === 0);
    expect(await used(result)).toEqual({ total: 250 });
  });

  it('a 10 MB JSON body in STREAMED chunks: read to the end, usage debited, nothing kept', async () => {
    const result = await check('plain.example');
    const content = 'lorem ipsum '.repeat((10 * 1024 * 1024) / 12);
    const body = JSON.stringify({ object: 'chat.completion', choices: [{ message: { content } }], usage: { prompt_tokens: 40, completion_tokens: 2_500_000, total_tokens: 2_500_040 } });
    expect(Buffer.byteLength(body)).toBeGreaterThan(10 * 1024 * 1024);
    const answers = await replayResponse(processor, { metadata: result.dynamicMetadata, contentType: 'application/json', chunks: chunked(body, 1024 * 1024) });
    expect(answers).toHaveLength(1 + 11);
    expect(await used(result)).toEqual({ total: 2_500_040 });
    expect(service().openStreams()).toBe(0);
  });

  it('a 10 MB SSE stream without usage (include_usage off): fallback, nothing kept', async () => {
    const result = await check('fallback.example');
    const event = `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ delta: { content: 'z'.repeat(1000) } }] })}\n\n`;
    const body = event.repeat(Math.ceil((10 * 1024 * 1024) / event.length));
    await replayResponse(processor, { metadata: result.dynamicMetadata, contentType: 'text/event-stream', chunks: chunked(body, 256 * 1024) });
    expect(await used(result)).toEqual({ total: 250 });
    expect(service().openStreams()).toBe(0);
  });
});

describe('reservation at Check, reconciled with the real usage', () => {
  it('reserves the request max_tokens (capped by max), then replaces it with the real usage', async () => {
    const workload = 'reserver';
    const first = await checkAs('reserve.example', workload, JSON.stringify({ model: 'm', max_tokens: 5000, messages: [] }));
    expect(first.allowed).toBe(true);
    expect(await used(first)).toEqual({ total: 600, prompt: 0 }); // capped at max: 600
    const second = await checkAs('reserve.example', workload, JSON.stringify({ model: 'm', max_tokens: 300 }));
    expect(await used(second)).toEqual({ total: 900, prompt: 0 });
    // A third reservation of the default 400 no longer fits in 1,000: refused while the two are in flight.
    const third = await checkAs('reserve.example', workload);
    expect(third.httpStatus).toBe(429);
    expect(third.message).toContain('reservation');

    const body = openaiChatJson({ input: 50, output: 30 });
    await replayResponse(processor, { metadata: first.dynamicMetadata, contentType: body.contentType, chunks: [body.body] });
    await replayResponse(processor, { metadata: second.dynamicMetadata, contentType: body.contentType, chunks: [body.body] });
    expect(await used(first)).toEqual({ total: 160, prompt: 100 });
    expect((await checkAs('reserve.example', workload)).allowed).toBe(true);
  });

  it('a response without usage keeps its reservation as the charge (no fallback configured)', async () => {
    const result = await checkAs('reserve.example', 'reserver-2');
    await replayResponse(processor, { metadata: result.dynamicMetadata, contentType: 'text/plain', chunks: ['ok'] });
    expect(await used(result)).toEqual({ total: 400, prompt: 0 });
  });
});
