import { describe, expect, it } from 'vitest';
import { toRequestView, InvalidCheckRequest } from '../../src/envoy/request.js';
import { CheckRequestType, type ProtoCheckRequest } from '../../src/envoy/codec.js';
import { buildCheckRequest } from '../../src/cli/check-client.js';

function decode(obj: Record<string, unknown>): ProtoCheckRequest {
  return CheckRequestType.decode(CheckRequestType.encode(CheckRequestType.fromObject(obj)).finish()) as unknown as ProtoCheckRequest;
}

describe('toRequestView', () => {
  it('lower-cases headers, strips the port from the host and parses path and query', () => {
    const v = toRequestView(
      decode(buildCheckRequest({ host: 'API.OpenAI.com:8443', path: '/v1/x?a=1&b=%20two&a=3', headers: { 'X-Request-Id': 'rid-1', 'X-Mixed': 'V' } })),
    );
    expect(v.host).toBe('api.openai.com');
    expect(v.hostPort).toBe(8443);
    expect(v.path).toBe('/v1/x');
    expect(v.rawPath).toBe('/v1/x?a=1&b=%20two&a=3');
    expect(v.query).toEqual({ a: '1', b: ' two' });
    expect(v.headers['x-mixed']).toBe('V');
    expect(v.requestId).toBe('rid-1');
    expect(Object.isFrozen(v)).toBe(true);
    expect(Object.isFrozen(v.headers)).toBe(true);
  });

  it('joins duplicate header_map entries with "," as Envoy joins them in headers', () => {
    const msg = buildCheckRequest({ host: 'h', rawHeaders: true }) as { attributes: { request: { http: { headerMap: { headers: unknown[] } } } } };
    msg.attributes.request.http.headerMap.headers.push({ key: 'X-Dup', rawValue: Buffer.from('a') }, { key: 'x-dup', rawValue: Buffer.from('b') });
    const v = toRequestView(decode(msg));
    expect(v.headers['x-dup']).toBe('a,b');
    expect(v.headers[':authority']).toBe('h');
    // headerNames lists each key of headers once, in order.
    expect(v.headerNames).toEqual(Object.keys(v.headers));
    expect(v.headerNames.filter((k) => k === 'x-dup')).toHaveLength(1);
    expect(Object.isFrozen(v.headerNames)).toBe(true);
  });

  it('reads IPv6 authorities, source and destination peers, context extensions and metadata', () => {
    const msg = buildCheckRequest({ host: '[::1]:9000', principal: 'spiffe://td/ns/a/sa/b', contextExtensions: { policy: 'p' } }) as Record<string, any>;
    msg.attributes.metadataContext = { filterMetadata: { 'envoy.filters.http.jwt_authn': { fields: { sub: { stringValue: 'u1' } } } } };
    const v = toRequestView(decode(msg));
    expect(v.host).toBe('::1');
    expect(v.hostPort).toBe(9000);
    expect(v.source.principal).toBe('spiffe://td/ns/a/sa/b');
    expect(v.source.address).toBe('10.0.0.1');
    expect(v.destination.port).toBe(8080);
    expect(v.contextExtensions).toEqual({ policy: 'p' });
    expect(v.metadataContext).toEqual({ 'envoy.filters.http.jwt_authn': { sub: 'u1' } });
  });

  it('rejects requests without attributes or http', () => {
    expect(() => toRequestView(decode({}))).toThrow(InvalidCheckRequest);
    expect(() => toRequestView(decode({ attributes: { request: {} } }))).toThrow(InvalidCheckRequest);
  });
});

describe('metadata_context values', () => {
  it('keeps numbers, booleans, lists and nested structs (decoded oneof members, not prototype defaults)', () => {
    const msg = buildCheckRequest({ host: 'h' }) as Record<string, any>;
    msg.attributes.metadataContext = {
      filterMetadata: {
        ns: {
          fields: {
            n: { numberValue: 3 },
            b: { boolValue: true },
            f: { boolValue: false },
            z: { nullValue: 0 },
            s: { stringValue: '' },
            l: { listValue: { values: [{ numberValue: 1 }, { stringValue: 'x' }] } },
            o: { structValue: { fields: { k: { numberValue: 0 } } } },
          },
        },
      },
    };
    const v = toRequestView(decode(msg));
    expect(v.metadataContext).toEqual({ ns: { n: 3, b: true, f: false, z: null, s: '', l: [1, 'x'], o: { k: 0 } } });
  });
});
