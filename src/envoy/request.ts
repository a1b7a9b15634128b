// CheckRequest (decoded protobufjs message) → RequestView. Pure; no I/O.
import type { ProtoCheckRequest, ProtoPeer, ProtoHttpRequest, ProtoMetadata } from './codec.js';
import { structToJs, toNumber } from './codec.js';
import type { PeerView, RequestView } from './request-view.js';

/** A request we cannot evaluate at all (the server answers INVALID_ARGUMENT). */
export class InvalidCheckRequest extends Error {}

/** Limits past which a request is refused rather than evaluated (Envoy's own limits are lower). */
export const REQUEST_LIMITS = {
  maxHeaders: 1024,
  maxHeaderBytes: 256 * 1024,
} as const;

/** The shared empty map (no prototype: a CEL lookup of `constructor` or `toString` finds nothing). */
const EMPTY: Readonly<Record<string, string>> = Object.freeze(Object.create(null) as Record<string, string>);
const utf8 = new TextDecoder('utf-8', { fatal: false });

const EMPTY_PEER: PeerView = Object.freeze({
  address: '',
  port: 0,
  principal: '',
  service: '',
  labels: EMPTY,
  certificate: '',
});

function peerView(p: ProtoPeer | null | undefined): PeerView {
  if (!p) return EMPTY_PEER;
  const sock = p.address?.socketAddress;
  return Object.freeze({
    address: sock?.address ?? p.address?.pipe?.path ?? '',
    port: sock?.portValue ?? 0,
    principal: p.principal ?? '',
    service: p.service ?? '',
    labels: frozenCopy(p.labels),
    certificate: p.certificate ?? '',
  });
}

function collectHeaders(http: ProtoHttpRequest, names: string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  let count = 0;
  let bytes = 0;
  const add = (rawKey: string, value: string) => {
    const key = rawKey.toLowerCase();
    count++;
    bytes += key.length + value.length;
    if (count > REQUEST_LIMITS.maxHeaders || bytes > REQUEST_LIMITS.maxHeaderBytes) {
      throw new InvalidCheckRequest('request headers exceed the size limit');
    }
    const prev = out[key];
    // header_map carries duplicates separately; join them the way Envoy joins `headers` (",").
    if (prev === undefined) {
      out[key] = value;
      names.push(key);
    } else out[key] = `${prev},${value}`;
  };
  const fromMap = http.headerMap?.headers;
  if (fromMap && fromMap.length > 0) {
    for (const h of fromMap) {
      if (!h.key) continue;
      const value = h.rawValue && h.rawValue.length > 0 ? utf8.decode(h.rawValue) : (h.value ?? '');
      add(h.key, value);
    }
  }
  const pairs = http.headerPairs;
  if (pairs) {
    for (let i = 0; i < pairs.length; i += 2) {
      const k = pairs[i]!;
      const v = pairs[i + 1]!;
      const key = k.toLowerCase();
      // A map key repeated on the wire: protobuf keeps the last value (Envoy never sends one twice).
      if (out[key] !== undefined && sentEarlier(pairs, i, k)) out[key] = v;
      else add(k, v);
    }
  }
  if (http.headers) {
    for (const k of Object.keys(http.headers)) add(k, http.headers[k] ?? '');
  }
  return out;
}

function sentEarlier(pairs: readonly string[], before: number, k: string): boolean {
  for (let j = 0; j < before; j += 2) if (pairs[j] === k) return true;
  return false;
}

function splitAuthority(authority: string): { host: string; port: number } {
  let a = authority.trim().toLowerCase();
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    const host = end > 0 ? a.slice(1, end) : a;
    const port = end > 0 && a[end + 1] === ':' ? Number(a.slice(end + 2)) : 0;
    return { host, port: Number.isInteger(port) && port > 0 && port < 65536 ? port : 0 };
  }
  const colon = a.lastIndexOf(':');
  let port = 0;
  if (colon >= 0 && a.indexOf(':') === colon) {
    const p = Number(a.slice(colon + 1));
    if (Number.isInteger(p) && p > 0 && p < 65536) port = p;
    a = a.slice(0, colon);
  }
  if (a.endsWith('.')) a = a.slice(0, -1);
  return { host: a, port };
}

/** A frozen copy of a string map; the shared empty map when there is nothing to copy (most requests). */
function frozenCopy(m: Readonly<Record<string, string>> | null | undefined): Readonly<Record<string, string>> {
  if (!m) return EMPTY;
  for (const _ in m) return Object.freeze({ ...m });
  return EMPTY;
}

function parseQuery(q: string): Readonly<Record<string, string>> {
  if (!q) return EMPTY;
  const out: Record<string, string> = Object.create(null);
  for (const part of q.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const rawK = eq < 0 ? part : part.slice(0, eq);
    const rawV = eq < 0 ? '' : part.slice(eq + 1);
    const k = safeDecode(rawK);
    if (!(k in out)) out[k] = safeDecode(rawV);
  }
  return Object.freeze(out);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

const EMPTY_METADATA: Readonly<Record<string, unknown>> = Object.freeze(Object.create(null) as Record<string, unknown>);

function metadataView(m: ProtoMetadata | null | undefined): Readonly<Record<string, unknown>> {
  const fm = m?.filterMetadata;
  if (!fm) return EMPTY_METADATA;
  const out: Record<string, unknown> = {};
  for (const ns of Object.keys(fm)) out[ns] = structToJs(fm[ns]);
  return Object.keys(out).length ? Object.freeze(out) : EMPTY_METADATA;
}

export function toRequestView(req: ProtoCheckRequest, now: () => Date = () => new Date()): RequestView {
  const attrs = req.attributes;
  if (!attrs) throw new InvalidCheckRequest('CheckRequest has no attributes');
  const http = attrs.request?.http;
  if (!http) throw new InvalidCheckRequest('CheckRequest has no attributes.request.http');

  const headerNames: string[] = [];
  const headers = collectHeaders(http, headerNames);
  const authority = http.host || headers[':authority'] || headers['host'] || '';
  const { host, port } = splitAuthority(authority);
  const rawPath = http.path || headers[':path'] || '';
  const qIdx = rawPath.indexOf('?');
  const path = qIdx < 0 ? rawPath : rawPath.slice(0, qIdx);
  const queryString = http.query || (qIdx < 0 ? '' : rawPath.slice(qIdx + 1).split('#')[0] ?? '');
  const ts = attrs.request?.time;
  const time = ts ? new Date(toNumber(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)) : now();
  const body =
    http.body || (http.rawBody && http.rawBody.length > 0 ? utf8.decode(http.rawBody) : '');

  return Object.freeze({
    streamId: http.id ?? '',
    requestId: headers['x-request-id'] ?? '',
    time,
    method: (http.method || headers[':method'] || '').toUpperCase(),
    scheme: http.scheme || headers[':scheme'] || '',
    host,
    authority,
    hostPort: port,
    path,
    rawPath,
    query: parseQuery(queryString),
    headers: Object.freeze(headers),
    headerNames: Object.freeze(headerNames),
    protocol: http.protocol ?? '',
    body,
    size: toNumber(http.size),
    source: peerView(attrs.source),
    destination: peerView(attrs.destination),
    contextExtensions: frozenCopy(attrs.contextExtensions),
    metadataContext: metadataView(attrs.metadataContext),
    routeMetadataContext: metadataView(attrs.routeMetadataContext),
    tlsSni: attrs.tlsSession?.sni ?? '',
  });
}
