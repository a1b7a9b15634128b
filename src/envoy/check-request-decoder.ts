// CheckRequest decoder written for the fields egress-authz reads, straight from the wire format.
// Why not protobufjs' generated decoder: it builds a message object per nested message and a prototype-backed
// object per map, and decodes fields nobody reads; this walks the bytes once and builds only the plain objects
// toRequestView needs (measured in docs/performance.md, Codec). Metadata structs (rare: only when Envoy is
// configured to forward metadata) are handed to protobufjs. Semantics follow protobuf's: unknown fields and
// fields with an unexpected wire type are skipped, a repeated singular field keeps its last value, a repeated
// map key keeps its last value, and a string that is not UTF-8 makes the message malformed.
import type protobuf from 'protobufjs';
import type {
  ProtoAddress,
  ProtoAttributeContext,
  ProtoCheckRequest,
  ProtoHeaderValue,
  ProtoHttpRequest,
  ProtoMetadata,
  ProtoPeer,
  ProtoSocketAddress,
  ProtoTimestamp,
} from './codec.js';

/** A structural fault in the bytes. The message never quotes input bytes. */
export class WireFormatError extends Error {}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;
const MAX_GROUP_DEPTH = 100;

/** Field keys (field number << 3 | wire type) of the length-delimited fields we read. */
const key = (field: number): number => (field << 3) | LENGTH_DELIMITED;
const varintKey = (field: number): number => (field << 3) | VARINT;

class WireReader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly end: number,
  ) {}

  uint32(): number {
    // Little-endian base-128; bits past 32 are dropped, as protobuf does for uint32 fields.
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= this.end) throw new WireFormatError('truncated varint');
    let b = buf[pos++]!;
    let value = b & 0x7f;
    if (b < 0x80) {
      this.pos = pos;
      return value;
    }
    let shift = 7;
    for (let i = 1; i < 10; i++) {
      if (pos >= this.end) throw new WireFormatError('truncated varint');
      b = buf[pos++]!;
      if (shift < 32) value |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    throw new WireFormatError('varint longer than 10 bytes');
  }

  /** A 64-bit varint as a JS number (exact up to 2^53; int64's negative values wrap as protobuf encodes them). */
  int64(): number {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) throw new WireFormatError('truncated varint');
      const b = buf[pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (i * 7);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (i * 7 - 32);
      if (b < 0x80) {
        this.pos = pos;
        lo >>>= 0;
        // A negative int64 has the top bit of the 64 set.
        return hi < 0 ? -((~hi >>> 0) * 2 ** 32 + ((~lo >>> 0) + 1)) : hi * 2 ** 32 + lo;
      }
    }
    throw new WireFormatError('varint longer than 10 bytes');
  }

  /** Reads a length prefix and returns where that sub-message ends. */
  length(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new WireFormatError('length past the end of the message');
    return end;
  }

  string(): string {
    const end = this.length();
    const start = this.pos;
    this.pos = end;
    if (start === end) return '';
    return end - start <= INTERN_MAX_BYTES ? interned(this.buf, start, end) : strictUtf8(this.buf, start, end);
  }

  bytes(): Buffer {
    const end = this.length();
    const start = this.pos;
    this.pos = end;
    return this.buf.subarray(start, end);
  }

  skip(wireType: number, field: number): void {
    switch (wireType) {
      case VARINT:
        this.int64();
        return;
      case FIXED64:
        this.advance(8);
        return;
      case LENGTH_DELIMITED:
        this.pos = this.length();
        return;
      case START_GROUP:
        this.skipGroup(field);
        return;
      case FIXED32:
        this.advance(4);
        return;
      default:
        throw new WireFormatError(`invalid wire type ${wireType}`);
    }
  }

  /** Skips a (deprecated) group up to its matching end; without recursion, so nesting cannot blow the stack. */
  private skipGroup(field: number): void {
    const open = [field];
    while (open.length > 0) {
      const tag = this.uint32();
      const wireType = tag & 7;
      if (wireType === END_GROUP) {
        if (tag >>> 3 !== open.pop()) throw new WireFormatError('mismatched end group');
      } else if (wireType === START_GROUP) {
        if (open.length >= MAX_GROUP_DEPTH) throw new WireFormatError('groups nested too deeply');
        open.push(tag >>> 3);
      } else this.skip(wireType, tag >>> 3);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireFormatError('truncated fixed-width field');
    this.pos += n;
  }

  /** Reads a tag; field number 0 is invalid in protobuf. */
  tag(): number {
    const tag = this.uint32();
    if (tag >>> 3 === 0) throw new WireFormatError('invalid field number 0');
    if ((tag & 7) === END_GROUP) throw new WireFormatError('unexpected end group');
    return tag;
  }

  /** After a sub-message's fields: its last field must end exactly where its length said. */
  finish(end: number): void {
    if (this.pos !== end) throw new WireFormatError('field runs past the end of its message');
  }
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A proto3 `string` must be UTF-8; protobufjs refuses one that is not, and so do we (INVALID_ARGUMENT; Envoy
 * sanitises what it sends, so only a broken or hostile client gets there). Buffer's decoder is the fast one but
 * replaces bad bytes with U+FFFD: only a string where one appears is decoded again, strictly.
 */
function strictUtf8(buf: Buffer, start: number, end: number): string {
  const s = buf.toString('utf8', start, end);
  if (s.indexOf('\ufffd') < 0) return s;
  try {
    return fatalUtf8.decode(buf.subarray(start, end));
  } catch {
    throw new WireFormatError('a string field is not valid UTF-8');
  }
}

// Short strings repeat from one Check to the next (header names, method, scheme, host, path, content type):
// they are looked up in a small table by their bytes instead of being decoded again. A lookup costs a pass
// over the bytes; decoding costs a call into C++ and a new string (and its garbage) every time.
const INTERN_MAX_BYTES = 64;
const INTERN_SLOTS = 4096;
const internTable: (string | undefined)[] = new Array<string | undefined>(INTERN_SLOTS).fill(undefined);

function interned(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  // The slot comes from the length and a few bytes at both ends (header names share prefixes such as
  // `x-envoy-`, values share suffixes); the comparison below then checks every byte.
  let hash = Math.imul(0x811c9dc5 ^ n, 0x01000193);
  hash = Math.imul(hash ^ buf[start]!, 0x01000193);
  hash = Math.imul(hash ^ buf[start + (n >> 1)]!, 0x01000193);
  hash = Math.imul(hash ^ buf[end - 1]!, 0x01000193);
  if (n > 3) {
    hash = Math.imul(hash ^ buf[start + 1]!, 0x01000193);
    hash = Math.imul(hash ^ buf[end - 2]!, 0x01000193);
    hash = Math.imul(hash ^ buf[start + (n >> 2)]!, 0x01000193);
  }
  const slot = (hash ^ (hash >>> 15)) & (INTERN_SLOTS - 1);
  const known = internTable[slot];
  if (known !== undefined && known.length === n) {
    // Every string in the table is ASCII, so a match means the bytes are exactly its characters.
    let i = 0;
    while (i < n && known.charCodeAt(i) === buf[start + i]) i++;
    if (i === n) return known;
  }
  for (let i = start; i < end; i++) {
    // Only ASCII is kept: there one byte is one UTF-16 code unit, which the comparison above relies on.
    if (buf[i]! >= 0x80) return strictUtf8(buf, start, end);
  }
  const fresh = buf.toString('latin1', start, end);
  internTable[slot] = fresh;
  return fresh;
}

// Each message reader below starts at a length prefix and returns the message it read.

/** map<string, string> entry (key = 1, value = 2; a missing part is '') appended to [key, value, ...]. */
function mapEntry(r: WireReader, into: string[]): void {
  const end = r.length();
  let k = '';
  let v = '';
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === key(1)) k = r.string();
    else if (tag === key(2)) v = r.string();
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  into.push(k, v);
}

/** [key, value, ...] as a map; a key sent twice keeps its last value. */
function toMap(pairs: readonly string[]): Record<string, string> {
  // No prototype: a key called `__proto__` or `constructor` is a key like any other.
  const map = Object.create(null) as Record<string, string>;
  for (let i = 0; i < pairs.length; i += 2) map[pairs[i]!] = pairs[i + 1]!;
  return map;
}

function socketAddress(r: WireReader): ProtoSocketAddress {
  const end = r.length();
  const out: ProtoSocketAddress = {};
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === key(2)) out.address = r.string();
    else if (tag === varintKey(3)) out.portValue = r.uint32();
    else if (tag === key(4)) out.namedPort = r.string();
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return out;
}

/** A message whose only field we read is a string at field 1 (Pipe.path, TLSSession.sni). */
function firstString(r: WireReader): string {
  const end = r.length();
  let value = '';
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === key(1)) value = r.string();
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return value;
}

function address(r: WireReader): ProtoAddress {
  const end = r.length();
  const out: ProtoAddress = {};
  while (r.pos < end) {
    const tag = r.tag();
    // `address` is a oneof: the member read last wins.
    if (tag === key(1)) {
      out.socketAddress = socketAddress(r);
      out.pipe = null;
    } else if (tag === key(2)) {
      out.pipe = { path: firstString(r) };
      out.socketAddress = null;
    } else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return out;
}

function peer(r: WireReader): ProtoPeer {
  const end = r.length();
  const out: ProtoPeer = {};
  let labels: string[] | undefined;
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag) {
      case key(1):
        out.address = address(r);
        break;
      case key(2):
        out.service = r.string();
        break;
      case key(3):
        mapEntry(r, (labels ??= []));
        break;
      case key(4):
        out.principal = r.string();
        break;
      case key(5):
        out.certificate = r.string();
        break;
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  r.finish(end);
  if (labels) out.labels = toMap(labels);
  return out;
}

function headerValue(r: WireReader): ProtoHeaderValue {
  const end = r.length();
  const out: ProtoHeaderValue = {};
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === key(1)) out.key = r.string();
    else if (tag === key(2)) out.value = r.string();
    else if (tag === key(3)) out.rawValue = r.bytes();
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return out;
}

function headerMap(r: WireReader): ProtoHeaderValue[] {
  const end = r.length();
  const headers: ProtoHeaderValue[] = [];
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === key(1)) headers.push(headerValue(r));
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return headers;
}

function httpRequest(r: WireReader): ProtoHttpRequest {
  const end = r.length();
  const out: ProtoHttpRequest = {};
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag) {
      case key(1):
        out.id = r.string();
        break;
      case key(2):
        out.method = r.string();
        break;
      case key(3):
        mapEntry(r, (out.headerPairs ??= []));
        break;
      case key(4):
        out.path = r.string();
        break;
      case key(5):
        out.host = r.string();
        break;
      case key(6):
        out.scheme = r.string();
        break;
      case key(7):
        out.query = r.string();
        break;
      case key(8):
        out.fragment = r.string();
        break;
      case varintKey(9):
        out.size = r.int64();
        break;
      case key(10):
        out.protocol = r.string();
        break;
      case key(11):
        out.body = r.string();
        break;
      case key(12):
        out.rawBody = r.bytes();
        break;
      case key(13):
        out.headerMap = { headers: headerMap(r) };
        break;
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  r.finish(end);
  return out;
}

function timestamp(r: WireReader): ProtoTimestamp {
  const end = r.length();
  const out: ProtoTimestamp = {};
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === varintKey(1)) out.seconds = r.int64();
    else if (tag === varintKey(2)) out.nanos = r.uint32() | 0;
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return out;
}

function attributesRequest(r: WireReader): NonNullable<ProtoAttributeContext['request']> {
  const end = r.length();
  const out: NonNullable<ProtoAttributeContext['request']> = {};
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === key(1)) out.time = timestamp(r);
    else if (tag === key(2)) out.http = httpRequest(r);
    else r.skip(tag & 7, tag >>> 3);
  }
  r.finish(end);
  return out;
}

function metadata(r: WireReader, metadataType: protobuf.Type): ProtoMetadata {
  const slice = r.bytes();
  try {
    return metadataType.decode(slice) as unknown as ProtoMetadata;
  } catch (err) {
    throw new WireFormatError(`metadata: ${(err as Error).message}`);
  }
}

function attributeContext(r: WireReader, metadataType: protobuf.Type): ProtoAttributeContext {
  const end = r.length();
  const out: ProtoAttributeContext = {};
  let contextExtensions: string[] | undefined;
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag) {
      case key(1):
        out.source = peer(r);
        break;
      case key(2):
        out.destination = peer(r);
        break;
      case key(4):
        out.request = attributesRequest(r);
        break;
      case key(10):
        mapEntry(r, (contextExtensions ??= []));
        break;
      case key(11):
        out.metadataContext = metadata(r, metadataType);
        break;
      case key(12):
        out.tlsSession = { sni: firstString(r) };
        break;
      case key(13):
        out.routeMetadataContext = metadata(r, metadataType);
        break;
      default:
        r.skip(tag & 7, tag >>> 3);
    }
  }
  r.finish(end);
  if (contextExtensions) out.contextExtensions = toMap(contextExtensions);
  return out;
}

/**
 * Decodes a CheckRequest into the plain shape of `ProtoCheckRequest`. Throws WireFormatError on bytes that are
 * not a well-formed protobuf message. `metadataType` is envoy.config.core.v3.Metadata (decoded by protobufjs).
 */
export function decodeCheckRequest(buf: Buffer, metadataType: protobuf.Type): ProtoCheckRequest {
  const r = new WireReader(buf, buf.length);
  const out: ProtoCheckRequest = {};
  while (r.pos < r.end) {
    const tag = r.tag();
    if (tag === key(1)) out.attributes = attributeContext(r, metadataType);
    else r.skip(tag & 7, tag >>> 3);
  }
  return out;
}
