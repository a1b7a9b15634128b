// Kyverno Envoy policies as Kyverno's documentation writes them: null for "no decision", deny/allow form,
// matchConditions, several global policies in name order, and the envoy library's response builders.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/test-server.js';

const A_HEADERS = `
apiVersion: envoy.kyverno.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: a-headers
spec:
  variables:
    - name: team
      expression: object.attributes.request.http.?headers["x-team"].orValue("")
  authorizations:
    - expression: >
        variables.team == "blocked"
          ? envoy.Denied(451).WithBody("blocked team").WithHeader(envoy.Header("x-why", "policy")).Response()
          : null
    - expression: >
        variables.team == "a"
          ? envoy.Allowed()
              .WithHeader(envoy.Header("x-team-key", "k-a"))
              .WithoutHeader("x-team")
              .WithResponseHeader(envoy.Header("x-served-by", "egress"))
              .WithQueryParam(envoy.QueryParam("team", "a"))
              .Response()
              .WithMessage("team a")
              .WithMetadata({"team": "a"})
          : null
`;

const B_FORM = `
apiVersion: envoy.kyverno.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: b-deny-allow
spec:
  matchConditions:
    - name: only-get
      expression: object.attributes.request.http.method == "GET"
  deny:
    - match: object.attributes.request.http.path.startsWith("/admin")
      response: envoy.Denied(403).WithBody("no admin").Response()
  allow:
    - response: envoy.Allowed().Response()
`;

describe('Kyverno Envoy policies', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ files: { 'a.yaml': A_HEADERS, 'b.yaml': B_FORM } });
  });
  afterAll(() => s.close());

  it('the first policy in name order that returns a response decides; null passes to the next', async () => {
    const blocked = await s.client.check({ host: 'any.example', headers: { 'x-team': 'blocked' } });
    expect(blocked.httpStatus).toBe(451);
    expect(blocked.body).toBe('blocked team');
    expect(blocked.headers).toContainEqual(expect.objectContaining({ key: 'x-why', value: 'policy' }));

    const teamA = await s.client.check({ host: 'any.example', method: 'POST', headers: { 'x-team': 'a' } });
    expect(teamA.allowed).toBe(true);
    expect(teamA.headers).toContainEqual(expect.objectContaining({ key: 'x-team-key', value: 'k-a', appendAction: 'APPEND_IF_EXISTS_OR_ADD' }));
    expect(teamA.headersToRemove).toEqual(['x-team']);
    expect(teamA.responseHeadersToAdd).toContainEqual(expect.objectContaining({ key: 'x-served-by', value: 'egress' }));
    expect(teamA.queryParametersToSet).toEqual([{ key: 'team', value: 'a' }]);
    expect(JSON.stringify(teamA.dynamicMetadata)).toContain('"a"');
  });

  it('the deny/allow form with matchConditions', async () => {
    expect((await s.client.check({ host: 'any.example', path: '/admin/x' })).body).toBe('no admin');
    expect((await s.client.check({ host: 'any.example', path: '/v1' })).allowed).toBe(true);
  });

  it('fails closed when no policy decides (Kyverno would allow)', async () => {
    const r = await s.client.check({ host: 'any.example', method: 'POST', path: '/v1' });
    expect(r.allowed).toBe(false);
    expect(r.httpStatus).toBe(403);
    expect(JSON.parse(r.body).reason).toContain('no policy made a decision');
  });
});
