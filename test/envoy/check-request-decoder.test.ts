// Our CheckRequest decoder against protobufjs' (the reference): the same bytes must give the same RequestView.
import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { CheckRequestType, DecodeError, deserializeCheckRequest, protoRoot, type ProtoCheckRequest } from '../../src/envoy/codec.js';
import { decodeCheckRequest, WireFormatError } from '../../src/envoy/check-request-decoder.js';
import { toRequestView } from '../../src/envoy/request.js';
import { buildCheckRequest } from '../../src/cli/check-client.js';

const MetadataType = protoRoot.lookupType('envoy.config.core.v3.Metadata');
const FIXED_NOW = () => new Date(0);

function encode(obj: Record<string, unknown>): Buffer {
  return Buffer.from(CheckRequestType.encode(CheckRequestType.fromObject(obj)).finish());
}
const ours = (buf: Buffer): ProtoCheckRequest => decodeCheckRequest(buf, MetadataType);
const reference = (buf: Buffer): ProtoCheckRequest => CheckRequestType.decode(buf) as unknown as ProtoCheckRequest;
/** The view as plain data (Dates as numbers, null-prototype maps as plain objects). */
const viewOf = (req: ProtoCheckRequest): unknown => JSON.parse(JSON.stringify(toRequestView(req, FIXED_NOW)));

/** Deterministic PRNG (mulberry32) so a failure names a reproducible case. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const ALPHABET = ['a', 'b', 'Z', '-', ':', '/', '.', '0', '9', ' ', '=', '&', '%', 'é', '€', '😀', '\u0000', '"'];

function randomCheckRequest(rand: () => number): Record<string, unknown> {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const str = (max: number): string => Array.from({ length: Math.floor(rand() * max) }, () => pick(ALPHABET)).join('');
  const map = (n: number): Record<string, string> =>
    Object.fromEntries(Array.from({ length: Math.floor(rand() * n) }, () => [str(12) || 'k', str(40)]));
  const peer = () =>
    rand() < 0.2
      ? undefined
      : {
          address:
            rand() < 0.8
              ? { socketAddress: { address: `10.${Math.floor(rand() * 255)}.0.1`, portValue: Math.floor(rand() * 65536) } }
              : { pipe: { path: `/run/${str(10)}` } },
          principal: rand() < 0.5 ? `spiffe://cluster.local/ns/${str(8)}/sa/${str(8)}` : '',
          service: str(10),
          labels: map(3),
          certificate: rand() < 0.1 ? str(60) : '',
        };
  const headers = { ':authority': pick(['api.openai.com', 'API.example:8443', '[::1]:9000', str(20)]), ...map(12) };
  const rawHeaders = rand() < 0.3;
  const http: Record<string, unknown> = {
    id: String(Math.floor(rand() * 2 ** 52)),
    method: pick(['GET', 'post', 'PUT', '']),
    path: pick(['/', '/v1/chat/completions?a=1&b=%20x', `/${str(30)}`]),
    host: rand() < 0.7 ? headers[':authority'] : '',
    scheme: pick(['http', 'https', '']),
    query: rand() < 0.2 ? 'q=1' : '',
    protocol: pick(['HTTP/1.1', 'HTTP/2', '']),
    size: pick([0, 1, 1234, 2 ** 40, -1]),
    body: rand() < 0.2 ? str(80) : '',
  };
  if (rawHeaders) {
    http.headerMap = { headers: Object.entries(headers).map(([key, v]) => ({ key, rawValue: Buffer.from(v) })) };
  } else http.headers = headers;
  if (rand() < 0.2) http.rawBody = Buffer.from(str(30));
  const attributes: Record<string, unknown> = {
    source: peer(),
    destination: peer(),
    request: {
      time: rand() < 0.7 ? { seconds: Math.floor(rand() * 2 ** 33), nanos: Math.floor(rand() * 1e9) } : undefined,
      http,
    },
    contextExtensions: map(3),
  };
  if (rand() < 0.3) {
    attributes.metadataContext = {
      filterMetadata: {
        [str(10) || 'ns']: {
          fields: {
            s: { stringValue: str(10) },
            n: { numberValue: rand() * 100 },
            b: { boolValue: rand() < 0.5 },
            l: { listValue: { values: [{ stringValue: 'x' }, { nullValue: 0 }] } },
            o: { structValue: { fields: { inner: { stringValue: str(5) } } } },
          },
        },
      },
    };
  }
  if (rand() < 0.3) attributes.routeMetadataContext = { filterMetadata: { route: { fields: { r: { stringValue: 'v' } } } } };
  if (rand() < 0.5) attributes.tlsSession = { sni: str(20) };
  return { attributes };
}

/** A CheckRequest whose http.headers map holds these entries in this order, written field by field. */
function requestWithHeaders(entries: ReadonlyArray<readonly [string, string | Uint8Array]>): Buffer {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).fork(); // attributes
  w.uint32((4 << 3) | 2).fork(); // attributes.request
  w.uint32((2 << 3) | 2).fork(); // attributes.request.http
  for (const [k, v] of entries) {
    w.uint32((3 << 3) | 2).fork(); // one headers map entry
    w.uint32((1 << 3) | 2).string(k);
    if (typeof v === 'string') w.uint32((2 << 3) | 2).string(v);
    else w.uint32((2 << 3) | 2).bytes(v);
    w.ldelim();
  }
  w.ldelim().ldelim().ldelim();
  return Buffer.from(w.finish());
}

describe('decodeCheckRequest', () => {
  it('gives the same RequestView as protobufjs on 500 random requests', () => {
    const rand = prng(20261122);
    for (let i = 0; i < 500; i++) {
      const bytes = encode(randomCheckRequest(rand));
      expect(viewOf(ours(bytes)), `case ${i}`).toEqual(viewOf(reference(bytes)));
    }
  });

  it('gives the same view for the bench request decoded many times (short strings come from its table)', () => {
    const bytes = encode(
      buildCheckRequest({ host: 'api.openai.com', method: 'POST', path: '/v1/chat/completions', headers: { authorization: 'Bearer abc' } }),
    );
    const first = viewOf(ours(bytes));
    for (let i = 0; i < 5; i++) expect(viewOf(ours(bytes))).toEqual(first);
    expect(first).toEqual(viewOf(reference(bytes)));
  });

  it('tells apart short strings that share their length and the bytes the table hashes', () => {
    // Same length, same first/second/quarter/middle/last bytes: only the bytes between differ.
    const values = ['a0000b0000c0000000yz', 'a1111b1111c1111111yz', 'a0000b0000c0000001yz'];
    for (let round = 0; round < 3; round++) {
      for (const v of values) {
        const view = toRequestView(ours(encode(buildCheckRequest({ host: 'h', headers: { 'x-v': v } }))));
        expect(view.headers['x-v']).toBe(v);
      }
    }
  });

  it('decodes non-ASCII strings, short and long, and refuses invalid UTF-8 as protobufjs does', () => {
    for (const v of ['é', 'ünïcödé-€', '😀'.repeat(40), 'literal \ufffd replacement character'.repeat(3)]) {
      const bytes = encode(buildCheckRequest({ host: 'h', headers: { 'x-v': v } }));
      expect(toRequestView(ours(bytes)).headers['x-v']).toBe(v);
      expect(viewOf(ours(bytes))).toEqual(viewOf(reference(bytes)));
    }
    for (const bad of [[0x61, 0x80, 0x62], [0xc3], [...Buffer.from('x'.repeat(100)), 0xff]]) {
      const bytes = requestWithHeaders([['x-bad', Buffer.from(bad)]]);
      expect(() => reference(bytes)).toThrow();
      expect(() => ours(bytes)).toThrow(/not valid UTF-8/);
    }
  });

  it('keeps headers named like Object.prototype members as headers', () => {
    const view = toRequestView(ours(requestWithHeaders([['__proto__', 'p'], ['constructor', 'c'], [':authority', 'h']])));
    expect(view.headers['__proto__']).toBe('p');
    expect(view.headers['constructor']).toBe('c');
    expect(view.headerNames).toEqual(['__proto__', 'constructor', ':authority']);
  });

  it('keeps the last value of a map key sent twice, as protobuf maps do', () => {
    const view = toRequestView(ours(requestWithHeaders([['x-twice', 'first'], [':authority', 'h'], ['x-twice', 'second']])));
    expect(view.headers['x-twice']).toBe('second');
    expect(view.headerNames).toEqual(['x-twice', ':authority']);
  });

  it('skips unknown fields of every wire type (groups too) and known fields sent with another wire type', () => {
    const base = buildCheckRequest({ host: 'api.example', headers: { a: '1' }, principal: 'spiffe://td/ns/n/sa/s' });
    const plain = encode(base);
    const withUnknown = (inner: (w: protobuf.Writer) => void): Buffer => {
      // An unknown-field block, then the real message: both at the top level and inside attributes.
      const w = protobuf.Writer.create();
      inner(w);
      w.uint32((1 << 3) | 2).fork();
      inner(w);
      w.ldelim();
      return Buffer.concat([Buffer.from(w.finish()), plain]);
    };
    const unknowns: Array<(w: protobuf.Writer) => void> = [
      (w) => w.uint32((99 << 3) | 0).uint64(2 ** 40),
      (w) => w.uint32((98 << 3) | 1).fixed64(7),
      (w) => w.uint32((97 << 3) | 5).fixed32(7),
      (w) => w.uint32((96 << 3) | 2).bytes(Buffer.from('ignored')),
      (w) => w.uint32((95 << 3) | 3).uint32((5 << 3) | 0).uint32(1).uint32((6 << 3) | 3).uint32((6 << 3) | 4).uint32((95 << 3) | 4),
      // attributes.source (1) as a varint instead of a message: skipped, like an unknown field.
      (w) => w.uint32((5 << 3) | 0).uint32(3),
    ];
    const expected = viewOf(ours(plain));
    for (const u of unknowns) expect(viewOf(ours(withUnknown(u)))).toEqual(expected);
  });

  it('rejects truncated and malformed bytes with WireFormatError, never another error', () => {
    const bytes = encode(
      buildCheckRequest({ host: 'api.example', headers: { authorization: 'Bearer s3cr3t-token-value' }, principal: 'spiffe://td/ns/n/sa/s' }),
    );
    let rejected = 0;
    for (let n = 1; n < bytes.length; n++) {
      try {
        ours(bytes.subarray(0, n));
      } catch (err) {
        expect(err).toBeInstanceOf(WireFormatError);
        expect((err as Error).message).not.toContain('s3cr3t');
        rejected++;
      }
    }
    // Cutting inside any length-delimited field leaves a length past the end: nearly every prefix is refused.
    expect(rejected).toBeGreaterThan(bytes.length * 0.9);

    const rand = prng(7);
    for (let i = 0; i < 2000; i++) {
      const mutated = Buffer.from(bytes);
      for (let k = 0; k < 3; k++) mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256);
      try {
        ours(mutated);
      } catch (err) {
        expect(err).toBeInstanceOf(WireFormatError);
      }
    }
  });

  it('refuses field number 0, a stray end-group, bad wire types and groups nested past 100', () => {
    expect(() => ours(Buffer.from([0x00, 0x01]))).toThrow(/field number 0/);
    expect(() => ours(Buffer.from([(7 << 3) | 4]))).toThrow(/end group/);
    expect(() => ours(Buffer.from([(7 << 3) | 6]))).toThrow(/wire type 6/);
    expect(() => ours(Buffer.from([(7 << 3) | 3, (8 << 3) | 4]))).toThrow(/mismatched end group/);
    const deep = Buffer.alloc(101, (7 << 3) | 3);
    expect(() => ours(deep)).toThrow(/nested too deeply/);
    expect(() => ours(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toThrow(WireFormatError);
  });

  it('reaches the server as DecodeError (INVALID_ARGUMENT), metadata faults included', () => {
    expect(() => deserializeCheckRequest(Buffer.from([0x0a, 0x05, 0x01]))).toThrow(DecodeError);
    // attributes.metadata_context whose Struct is cut short: protobufjs' error, wrapped.
    const badMetadata = Buffer.from([0x0a, 0x04, (11 << 3) | 2, 0x02, 0x0a, 0x05]);
    expect(() => deserializeCheckRequest(badMetadata)).toThrow(DecodeError);
  });
});
