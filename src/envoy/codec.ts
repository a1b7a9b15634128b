// Codecs for the ext_authz and health services: the gRPC transport's encode/decode functions. Responses are
// encoded by protobufjs; a CheckRequest is decoded by our own decoder (check-request-decoder.ts) into plain
// objects of the shapes below, read directly (no toObject conversion on the hot path).
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import protobuf from 'protobufjs';
import { decodeCheckRequest } from './check-request-decoder.js';

function findProtoDir(): string {
  // Works from src/ (tsx, vitest) and from dist/ (compiled): walk up to the package root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'proto');
    if (fs.existsSync(path.join(candidate, 'ext_authz.proto'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('proto/ directory not found next to the egress-authz package');
}

export const PROTO_DIR = findProtoDir();

/** Loads our .proto files (by name, from proto/) into a fresh root. At start-up only. */
export function loadProtoRoot(files: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  // google/protobuf/* come from protobufjs' bundled common definitions; our files import each other by name.
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? target : path.join(PROTO_DIR, path.basename(target));
  return root.loadSync(files.map((f) => path.join(PROTO_DIR, f)), { keepCase: false });
}

/** The gRPC method path of ext_authz's Check. */
export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

export const protoRoot = loadProtoRoot(['ext_authz.proto', 'health.proto']);
export const CheckRequestType = protoRoot.lookupType('envoy.service.auth.v3.CheckRequest');
export const CheckResponseType = protoRoot.lookupType('envoy.service.auth.v3.CheckResponse');
export const HealthCheckRequestType = protoRoot.lookupType('grpc.health.v1.HealthCheckRequest');
export const HealthCheckResponseType = protoRoot.lookupType('grpc.health.v1.HealthCheckResponse');

// --- Shapes of decoded messages (protobufjs camelCase field names). Only what we read. ---
export interface ProtoHeaderValue {
  key?: string;
  value?: string;
  rawValue?: Uint8Array;
}
export interface ProtoSocketAddress {
  address?: string;
  portValue?: number;
  namedPort?: string;
}
export interface ProtoAddress {
  socketAddress?: ProtoSocketAddress | null;
  pipe?: { path?: string } | null;
}
export interface ProtoPeer {
  address?: ProtoAddress | null;
  service?: string;
  labels?: Record<string, string>;
  principal?: string;
  certificate?: string;
}
export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}
export interface ProtoValue {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}
export interface ProtoMetadata {
  filterMetadata?: Record<string, ProtoStruct>;
}
export interface ProtoHttpRequest {
  id?: string;
  method?: string;
  /** The `headers` map as protobufjs decodes it (tests and tools that build requests by hand). */
  headers?: Record<string, string>;
  /**
   * The `headers` map as our decoder yields it: [key, value, key, value, ...] in wire order, a key sent twice
   * appearing twice (the map keeps the last). Saves building a dictionary only to copy it into the view's.
   */
  headerPairs?: string[];
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  size?: number | { toNumber(): number };
  protocol?: string;
  body?: string;
  rawBody?: Uint8Array;
  headerMap?: { headers?: ProtoHeaderValue[] } | null;
}
export interface ProtoTimestamp {
  seconds?: number | { toNumber(): number };
  nanos?: number;
}
export interface ProtoAttributeContext {
  source?: ProtoPeer | null;
  destination?: ProtoPeer | null;
  request?: { time?: ProtoTimestamp | null; http?: ProtoHttpRequest | null } | null;
  contextExtensions?: Record<string, string>;
  metadataContext?: ProtoMetadata | null;
  routeMetadataContext?: ProtoMetadata | null;
  tlsSession?: { sni?: string } | null;
}
export interface ProtoCheckRequest {
  attributes?: ProtoAttributeContext | null;
}

/** A message that failed to decode: the server answers INVALID_ARGUMENT instead of crashing. */
export class DecodeError extends Error {}

const MetadataType = protoRoot.lookupType('envoy.config.core.v3.Metadata');

export function deserializeCheckRequest(buf: Buffer): ProtoCheckRequest {
  try {
    return decodeCheckRequest(buf, MetadataType);
  } catch (err) {
    // Never echo input bytes: only the decoder's structural complaint.
    throw new DecodeError(`malformed CheckRequest: ${(err as Error).message}`);
  }
}

export function serializeCheckResponse(msg: object): Buffer {
  return Buffer.from(CheckResponseType.encode(msg as protobuf.Message).finish());
}

export function serializeCheckRequest(msg: object): Buffer {
  return Buffer.from(CheckRequestType.encode(CheckRequestType.fromObject(msg)).finish());
}

export function deserializeCheckResponse(buf: Buffer): Record<string, unknown> {
  return CheckResponseType.toObject(CheckResponseType.decode(buf), {
    enums: String,
    defaults: false,
    longs: Number,
  }) as Record<string, unknown>;
}

/** google.protobuf.Struct (decoded) → plain JS object. */
export function structToJs(s: ProtoStruct | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!s?.fields) return out;
  for (const [k, v] of Object.entries(s.fields)) out[k] = valueToJs(v);
  return out;
}

const VALUE_KINDS = ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'] as const;

function valueToJs(v: ProtoValue & { kind?: string }): unknown {
  // Decoded messages name the set member of the `kind` oneof; unset members read as defaults ('' , 0, false)
  // from the prototype, so presence must come from `kind`, not from `!= null`. Plain objects have own keys.
  const kind = v.kind ?? VALUE_KINDS.find((k) => Object.prototype.hasOwnProperty.call(v, k));
  switch (kind) {
    case 'structValue':
      return structToJs(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(valueToJs);
    case 'stringValue':
      return v.stringValue;
    case 'numberValue':
      return v.numberValue;
    case 'boolValue':
      return v.boolValue;
    default:
      return null;
  }
}

/** Plain JS value → google.protobuf.Struct message shape (for dynamic_metadata). */
export function jsToStruct(obj: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = jsToValue(v);
  return { fields };
}

function jsToValue(v: unknown): ProtoValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'bigint') return { numberValue: Number(v) };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsToValue) } };
  if (v instanceof Map) return { structValue: jsToStruct(Object.fromEntries(v)) };
  if (v instanceof Date) return { stringValue: v.toISOString() };
  if (typeof v === 'object') return { structValue: jsToStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}

export function toNumber(v: number | { toNumber(): number } | undefined | null): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}
