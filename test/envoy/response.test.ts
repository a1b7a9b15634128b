import { describe, expect, it } from 'vitest';
import { toCheckResponse } from '../../src/envoy/response.js';
import { CheckResponseType, deserializeCheckResponse, serializeCheckResponse } from '../../src/envoy/codec.js';
import { allow, deny } from '../../src/pipeline/decision.js';

function roundTrip(o: object): Record<string, any> {
  return deserializeCheckResponse(serializeCheckResponse(CheckResponseType.fromObject(o)));
}

describe('toCheckResponse', () => {
  it('encodes an allow as status 0 + ok_response with overwrite headers (append_action 2 and append=false)', () => {
    const d = { ...allow('p', 'authorization'), headers: [{ key: 'authorization', value: 'Bearer k', action: 'overwrite' as const }], headersToRemove: ['x-token'] };
    const r = roundTrip(toCheckResponse(d));
    expect(r.status?.code ?? 0).toBe(0);
    expect(r.okResponse.headers[0]).toEqual({ header: { key: 'authorization', value: 'Bearer k' }, append: {}, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    expect(r.okResponse.headersToRemove).toEqual(['x-token']);
    expect(r.deniedResponse).toBeUndefined();
  });

  it('encodes a deny with the HTTP status always set and a non-zero rpc code', () => {
    for (const [status, rpc] of [[401, 16], [403, 7], [429, 8], [503, 14]] as const) {
      const r = roundTrip(toCheckResponse(deny('p', 'identity', status, 'why')));
      expect(r.status.code).toBe(rpc);
      expect(r.deniedResponse.status.code).not.toBe('Empty');
      expect(JSON.parse(r.deniedResponse.body)).toEqual({ error: expect.any(String), reason: 'why' });
    }
    const r401 = roundTrip(toCheckResponse(deny('p', 'identity', 401, 'x')));
    expect(r401.deniedResponse.status.code).toBe('Unauthorized');
  });

  it('carries dynamic metadata as a Struct', () => {
    const d = { ...allow('p', 'authorization'), dynamicMetadata: { team: 'a', n: 2, nested: { ok: true } } };
    const r = roundTrip(toCheckResponse(d));
    expect(r.dynamicMetadata.fields.team.stringValue).toBe('a');
    expect(r.dynamicMetadata.fields.nested.structValue.fields.ok.boolValue).toBe(true);
  });
});
