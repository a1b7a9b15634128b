// A request description (policy tests, `explain`, the admin explain endpoint) → the RequestView the server
// would build for the same request. It goes through the real CheckRequest encoding and decoding, so tests
// see exactly what a Check from Envoy would produce (header joining, host parsing, ...).
import { buildCheckRequest, type CheckRequestInput } from '../../cli/check-request.js';
import { deserializeCheckRequest, serializeCheckRequest } from '../../envoy/codec.js';
import { toRequestView } from '../../envoy/request.js';
import type { RequestView } from '../../envoy/request-view.js';
import type { YNode } from '../yaml-node.js';

export interface RequestSpec {
  readonly host: string;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Source principal as Envoy reports it for mTLS peers (e.g. spiffe://cluster.local/ns/a/sa/b). */
  readonly principal?: string;
  readonly sourceAddress?: string;
  readonly contextExtensions?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Request time (RFC 3339); default: now. */
  readonly time?: string;
}

export const REQUEST_KEYS = [
  'host',
  'method',
  'path',
  'headers',
  'principal',
  'sourceAddress',
  'contextExtensions',
  'body',
  'time',
] as const;

function stringMap(node: YNode | undefined, what: string): Record<string, string> | undefined {
  if (!node || node.isNull) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of node.entries(`${what}: a map of names to strings`)) {
    const s = v.string(`${what}.${k}: a string`);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

/** Reads a request description from YAML, reporting problems at their positions. */
export function readRequestSpec(node: YNode, what = 'request'): RequestSpec | undefined {
  if (!node.isMap) {
    node.error(`${what}: expected a mapping with at least host`);
    return undefined;
  }
  node.checkKeys(REQUEST_KEYS, what);
  const host = node.get('host')?.string(`${what}.host: a host name`);
  if (!host) {
    if (!node.get('host')) node.error(`${what}.host is required`);
    return undefined;
  }
  const opt = (k: string) => {
    const n = node.get(k);
    return n && !n.isNull ? n.string(`${what}.${k}: a string`) : undefined;
  };
  const time = opt('time');
  if (time !== undefined && Number.isNaN(Date.parse(time))) node.get('time')!.error(`${what}.time: expected an RFC 3339 time`);
  return {
    host,
    method: opt('method'),
    path: opt('path'),
    headers: stringMap(node.get('headers'), `${what}.headers`),
    principal: opt('principal'),
    sourceAddress: opt('sourceAddress'),
    contextExtensions: stringMap(node.get('contextExtensions'), `${what}.contextExtensions`),
    body: opt('body'),
    time,
  };
}

export class RequestSpecError extends Error {}

function jsonStringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new RequestSpecError(`${what}: expected an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw new RequestSpecError(`${what}.${k}: expected a string`);
    out[k] = x;
  }
  return out;
}

/** Validates a request description received as JSON (the admin explain endpoint). */
export function requestSpecFromJson(v: unknown): RequestSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RequestSpecError('request: expected a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(REQUEST_KEYS as readonly string[]).includes(k)) throw new RequestSpecError(`request: unknown field "${k}"`);
  }
  const str = (k: string): string | undefined => {
    const x = o[k];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string') throw new RequestSpecError(`request.${k}: expected a string`);
    return x;
  };
  const host = str('host');
  if (!host) throw new RequestSpecError('request.host is required');
  const time = str('time');
  if (time !== undefined && Number.isNaN(Date.parse(time))) throw new RequestSpecError('request.time: expected an RFC 3339 time');
  return {
    host,
    method: str('method'),
    path: str('path'),
    headers: jsonStringMap(o.headers, 'request.headers'),
    principal: str('principal'),
    sourceAddress: str('sourceAddress'),
    contextExtensions: jsonStringMap(o.contextExtensions, 'request.contextExtensions'),
    body: str('body'),
    time,
  };
}

/** The ext_authz client input for this request (what `egress-authz check` would send). */
export function toCheckInput(spec: RequestSpec): CheckRequestInput {
  return {
    host: spec.host,
    method: spec.method,
    path: spec.path,
    headers: spec.headers ? { ...spec.headers } : undefined,
    principal: spec.principal,
    sourceAddress: spec.sourceAddress,
    contextExtensions: spec.contextExtensions ? { ...spec.contextExtensions } : undefined,
    body: spec.body,
  };
}

/** The RequestView the server builds for this request, through the real protobuf encoding. */
export function toRequestViewFromSpec(spec: RequestSpec): RequestView {
  const msg = buildCheckRequest(toCheckInput(spec)) as { attributes: { request: { time?: unknown } } };
  if (spec.time !== undefined) {
    const ms = Date.parse(spec.time);
    msg.attributes.request.time = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
  }
  return toRequestView(deserializeCheckRequest(serializeCheckRequest(msg)));
}
