// The generic `http` metadata source (Kuadrant-compatible) against a real HTTP server on loopback.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compile, harness, run } from './harness.js';
import { refusedUrl, startHttpBackend, type HttpBackend } from './http-backend.js';

let backend: HttpBackend;
beforeAll(async () => {
  backend = await startHttpBackend();
});
afterAll(() => backend.close());
afterEach(() => {
  backend.requests.length = 0;
  backend.handler = () => ({ body: '{}' });
});

function stageOf(yamlText: string, h = harness()) {
  const { stage, errors } = compile(yamlText.replaceAll('BACKEND', backend.url), h);
  expect(errors).toEqual([]);
  return stage!;
}

describe('http source: requests', () => {
  it('POSTs a body expression as written and parses the JSON answer (whole numbers as CEL ints)', async () => {
    backend.handler = () => ({ body: JSON.stringify({ auth: { client_token: 'tok-123', lease_duration: 3600 }, ratio: 0.5 }) });
    const stage = stageOf(`
login:
  http:
    url: "BACKEND/v1/auth/kubernetes/login"
    method: POST
    contentType: application/json
    body:
      expression: '"{\\"jwt\\": \\"" + request.headers.authorization.substring(7) + "\\", \\"role\\": \\"r\\"}"'
`);
    const { decision, ctx } = await run(stage, { view: { headers: { authorization: 'Bearer sa-token-1' } } });
    expect(decision).toBeUndefined();
    expect(backend.requests).toHaveLength(1);
    const req = backend.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/auth/kubernetes/login');
    expect(req.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req.body)).toEqual({ jwt: 'sa-token-1', role: 'r' });
    expect(ctx.auth.metadata['login']).toEqual({ auth: { client_token: 'tok-123', lease_duration: 3600n }, ratio: 0.5 });
  });

  it('GETs a urlExpression with header expressions and literal headers; a later priority reads an earlier result', async () => {
    backend.handler = (req) =>
      req.path === '/first' ? { body: '{"token":"hvs.abc","ns":"team-a"}' } : { body: '{"data":{"data":{"api_key":"sk-1"}}}' };
    const stage = stageOf(`
second:
  priority: 1
  http:
    urlExpression: '"BACKEND/secret/" + auth.metadata.first.ns'
    headers:
      X-Vault-Token:
        expression: auth.metadata.first.token
      Accept:
        value: application/json
first:
  priority: 0
  http:
    url: BACKEND/first
`);
    const { decision, ctx } = await run(stage);
    expect(decision).toBeUndefined();
    expect(backend.requests.map((r) => r.path)).toEqual(['/first', '/secret/team-a']);
    expect(backend.requests[1]!.headers['x-vault-token']).toBe('hvs.abc');
    expect(backend.requests[1]!.headers['accept']).toBe('application/json');
    expect(backend.requests[1]!.method).toBe('GET');
    expect(ctx.auth.metadata['second']).toEqual({ data: { data: { api_key: 'sk-1' } } });
  });

  it('runs sources of equal priority concurrently', async () => {
    // Each request is held until both have arrived: run one after the other, they would never finish.
    let release!: () => void;
    const bothArrived = new Promise<void>((resolve) => (release = resolve));
    backend.handler = (req) => {
      if (backend.requests.length === 2) release();
      return { after: bothArrived, body: JSON.stringify({ path: req.path }) };
    };
    const stage = stageOf(`
a: {http: {url: BACKEND/a}}
b: {http: {url: BACKEND/b}}
`);
    const { decision, ctx } = await run(stage, { deadlineMs: 2000 });
    expect(decision).toBeUndefined();
    expect(ctx.auth.metadata).toEqual({ a: { path: '/a' }, b: { path: '/b' } });
  });

  it('encodes bodyParameters as a form by default and as JSON when asked', async () => {
    const stage = stageOf(`
form:
  http:
    url: BACKEND/form
    method: POST
    bodyParameters:
      role: {value: egress}
      path: {expression: request.path}
json:
  http:
    url: BACKEND/json
    method: POST
    contentType: application/json
    bodyParameters:
      role: {value: egress}
      n: {expression: "1 + 2"}
`);
    await run(stage);
    const byPath = Object.fromEntries(backend.requests.map((r) => [r.path, r]));
    expect(byPath['/form']!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(new URLSearchParams(byPath['/form']!.body).get('path')).toBe('/v1/chat/completions');
    expect(new URLSearchParams(byPath['/form']!.body).get('role')).toBe('egress');
    expect(JSON.parse(byPath['/json']!.body)).toEqual({ role: 'egress', n: 3 });
  });

  it('keeps a non-JSON answer as a string', async () => {
    backend.handler = () => ({ contentType: 'text/plain', body: 'plain text' });
    const stage = stageOf(`t: {http: {url: BACKEND/t}}`);
    const { ctx } = await run(stage);
    expect(ctx.auth.metadata['t']).toBe('plain text');
  });

  it('skips a source whose when is false', async () => {
    const stage = stageOf(`
t:
  when: [{predicate: 'request.method == "GET"'}]
  http: {url: BACKEND/t}
`);
    const { decision, ctx } = await run(stage);
    expect(decision).toBeUndefined();
    expect(backend.requests).toHaveLength(0);
    expect('t' in ctx.auth.metadata).toBe(false);
  });

  it('marks token-like values of the answer as secrets for log scrubbing, not short names', async () => {
    backend.handler = () => ({ body: '{"auth":{"client_token":"hvs.short","metadata":{"service_account_namespace":"team-a"}},"x":"a-very-long-opaque-value-0123456789"}' });
    const stage = stageOf(`t: {http: {url: BACKEND/t}}`);
    const { ctx } = await run(stage);
    expect(ctx.secrets).toContain('hvs.short');
    expect(ctx.secrets).toContain('a-very-long-opaque-value-0123456789');
    expect(ctx.secrets).not.toContain('team-a');
  });
});

describe('http source: failures', () => {
  it('leaves the result absent on 4xx (Kuadrant semantics) and lets later sources see no key', async () => {
    backend.handler = (req) => (req.path === '/login' ? { status: 403, body: '{"errors":["namespace not authorized"]}' } : { body: '{}' });
    const stage = stageOf(`
login: {priority: 0, http: {url: BACKEND/login, method: POST, contentType: application/json, body: {value: "{}"}}}
secret: {priority: 1, http: {urlExpression: '"BACKEND/s/" + auth.metadata.login.auth.client_token'}}
`);
    const { decision, ctx } = await run(stage);
    expect(decision).toBeUndefined();
    expect(ctx.auth.metadata).toEqual({});
    // The second source could not build its URL, so it made no call.
    expect(backend.requests.map((r) => r.path)).toEqual(['/login']);
  });

  it('denies 503 on a 5xx answer', async () => {
    backend.handler = () => ({ status: 503, body: '{"errors":["Vault is sealed"]}' });
    const stage = stageOf(`t: {http: {url: BACKEND/t}}`);
    const { decision } = await run(stage);
    expect(decision).toMatchObject({ kind: 'deny', status: 503, evaluator: 'metadata' });
    expect(decision?.kind === 'deny' && decision.reason).toContain('HTTP 503');
  });

  it('denies 503 when the backend refuses connections', async () => {
    const h = harness();
    const { stage } = compile(`t: {http: {url: "${await refusedUrl()}/t"}}`, h);
    const { decision } = await run(stage!);
    expect(decision).toMatchObject({ kind: 'deny', status: 503 });
    expect(decision?.kind === 'deny' && decision.reason).toContain('ECONNREFUSED');
  });

  it('denies 503 at the deadline when the backend does not answer', async () => {
    backend.handler = () => ({ hang: true });
    const stage = stageOf(`t: {http: {url: BACKEND/t, timeout: 10s}}`);
    const { decision, elapsedMs } = await run(stage, { deadlineMs: 150 });
    expect(decision).toMatchObject({ kind: 'deny', status: 503 });
    // Well before the 10 s timeout: the Check's deadline ended the wait.
    expect(elapsedMs).toBeLessThan(5000);
  });

  it('denies 503 when the source timeout ends before the deadline', async () => {
    backend.handler = () => ({ hang: true });
    const stage = stageOf(`t: {http: {url: BACKEND/t, timeout: 100ms}}`);
    const { decision } = await run(stage, { deadlineMs: 5000 });
    expect(decision).toMatchObject({ kind: 'deny', status: 503 });
    expect(decision?.kind === 'deny' && decision.reason).toContain('timed out');
  });
});

describe('http source: cache', () => {
  const cached = `
t:
  cache:
    key: {expression: 'request.headers["x-team"]'}
    ttl: 0.3
  http:
    urlExpression: '"BACKEND/t/" + request.headers["x-team"]'
`;

  it('answers from the cache per key until the TTL, then calls again', async () => {
    const stage = stageOf(cached);
    const a = { view: { headers: { 'x-team': 'a' } } };
    expect((await run(stage, a)).ctx.auth.metadata['t']).toEqual({});
    await run(stage, a);
    await run(stage, { view: { headers: { 'x-team': 'b' } } });
    expect(backend.requests.map((r) => r.path)).toEqual(['/t/a', '/t/b']);
    await new Promise((r) => setTimeout(r, 400));
    await run(stage, a);
    expect(backend.requests.map((r) => r.path)).toEqual(['/t/a', '/t/b', '/t/a']);
  });

  it('coalesces concurrent misses of one key into one call', async () => {
    const stage = stageOf(cached.replace('0.3', '60'));
    const runs = await Promise.all(Array.from({ length: 20 }, () => run(stage, { view: { headers: { 'x-team': 'c' } } })));
    expect(runs.every((r) => r.decision === undefined && r.ctx.auth.metadata['t'] !== undefined)).toBe(true);
    expect(backend.requests).toHaveLength(1);
  });

  it('does not cache failures', async () => {
    backend.handler = () => ({ status: 404, body: '{"errors":[]}' });
    const stage = stageOf(cached.replace('0.3', '60'));
    await run(stage, { view: { headers: { 'x-team': 'd' } } });
    backend.handler = () => ({ body: '{"ok":true}' });
    const { ctx } = await run(stage, { view: { headers: { 'x-team': 'd' } } });
    expect(ctx.auth.metadata['t']).toEqual({ ok: true });
    expect(backend.requests).toHaveLength(2);
  });

  it('survives policy reloads: a recompiled source uses the same cache', async () => {
    const h = harness();
    const first = compile(cached.replaceAll('BACKEND', backend.url).replace('0.3', '60'), h).stage!;
    await run(first, { view: { headers: { 'x-team': 'e' } } });
    const reloaded = compile(cached.replaceAll('BACKEND', backend.url).replace('0.3', '60'), h).stage!;
    await run(reloaded, { view: { headers: { 'x-team': 'e' } } });
    expect(backend.requests).toHaveLength(1);
  });

  it('a reload that changes the request never serves answers cached for the old definition', async () => {
    const h = harness();
    const first = compile(cached.replaceAll('BACKEND', backend.url).replace('0.3', '60'), h).stage!;
    await run(first, { view: { headers: { 'x-team': 'f' } } });
    const changed = compile(cached.replaceAll('BACKEND', backend.url).replace('0.3', '60').replace('/t/', '/v2/'), h).stage!;
    await run(changed, { view: { headers: { 'x-team': 'f' } } });
    expect(backend.requests.map((r) => r.path)).toEqual(['/t/f', '/v2/f']);
  });
});

describe('http source: load errors', () => {
  it.each([
    ['t: {http: {method: GET}}', /"url" or "urlExpression" is required/],
    ['t: {http: {url: "http://x/a", urlExpression: \'"http://x/b"\'}}', /not both/],
    ['t: {http: {url: "ftp://x/a"}}', /expected an http\(s\) URL/],
    ['t: {http: {url: "http://x/a", method: TRACE}}', /method: one of GET, POST/],
    ['t: {http: {url: "http://x/a", body: {value: "x"}}}', /a GET request has no body/],
    ['t: {http: {url: "http://x/a", sharedSecretRef: {name: s, key: k}}}', /sharedSecretRef is not supported/],
    ['t: {http: {url: "http://x/a", headers: {X: {selector: auth.identity.sub}}}}', /selector \(Authorino JSON paths\) is not supported/],
    ['t: {http: {url: "http://x/a", contentType: text/xml, method: POST}}', /contentType: one of/],
    ['t: {http: {url: "http://x/a", timout: 1s}}', /unknown field "timout".*did you mean "timeout"/],
    ['t: {http: {urlExpression: "1 + 2"}}', /urlExpression: expression must return string/],
    ['t: {http: {url: "http://x/a"}, cache: {ttl: 5}}', /cache.key is required/],
    ['t: {http: {url: "http://x/a"}, cache: {key: {value: k}, ttl: soon}}', /cache.ttl: expected a duration/],
    ['t: {userInfo: {identitySource: x}}', /"userInfo" metadata is not supported/],
    ['t: {priority: 1}', /give exactly one source kind \(http, vault\)/],
  ])('%s', (text, message) => {
    const { errors } = compile(text, harness());
    expect(errors.join('\n')).toMatch(message);
    expect(errors[0]).toMatch(/^policy\.yaml:\d+:\d+: /);
  });
});
