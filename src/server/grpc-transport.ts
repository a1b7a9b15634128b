// A gRPC server on node:http2: the transport under Check, health and ext_proc.
//
// Why not @grpc/grpc-js's Server: on this machine a bare grpc-js server answering Check with a fixed response
// costs ~81 µs of CPU per call; the same answer written straight on node:http2 costs ~50 µs (docs/performance.md,
// "Transport"). egress-authz serves three small services over plain-text HTTP/2 from Envoy, so it needs only
// the protocol's core: length-prefixed messages, the status in trailers, trailers-only errors, gzip/deflate
// requests, a message size limit and graceful GOAWAY. grpc-js stays the client library (tests, `check`).
//
// Protocol: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { splitHostPort } from './admin.js';

/** gRPC status codes (the numbers are the protocol's). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/**
 * A unary method: one request message, one answer. `handle` calls exactly one of `reply.ok` / `reply.fail`.
 * `deadline` is when the client stops waiting (epoch ms, from its `grpc-timeout`), if it said.
 */
export interface UnaryMethod<Req, Res> {
  readonly kind: 'unary';
  readonly path: string;
  decode(message: Buffer): Req;
  encode(response: Res): Uint8Array;
  handle(request: Req, reply: UnaryReply<Res>, deadline: number | undefined): void;
}

export interface UnaryReply<Res> {
  ok(response: Res): void;
  fail(code: GrpcStatusCode, details: string): void;
}

/** A streaming method (server- or bidirectional streaming): `handle` gets the call at once. */
export interface StreamingMethod<Req, Res> {
  readonly kind: 'streaming';
  readonly path: string;
  decode(message: Buffer): Req;
  encode(response: Res): Uint8Array;
  handle(call: StreamCall<Req, Res>): void;
}

// Methods of different message types live in one table; each is only ever called with its own types (method
// signatures compare their parameters both ways, so a UnaryMethod<CheckRequest, object> is one of these).
export type GrpcMethod = UnaryMethod<unknown, unknown> | StreamingMethod<unknown, unknown>;

/**
 * The server side of a streaming call. Events: 'data' (a request message), 'end' (the client half-closed),
 * 'cancelled' (the client reset the stream or the connection went away before the call ended), 'close'.
 */
export interface StreamCall<Req, Res> {
  on(event: 'data', listener: (request: Req) => void): this;
  on(event: 'end' | 'cancelled' | 'close', listener: () => void): this;
  once(event: 'data', listener: (request: Req) => void): this;
  once(event: 'end' | 'cancelled' | 'close', listener: () => void): this;
  /** Sends a response message (dropped once the call has ended). */
  write(response: Res): void;
  /** Ends the call with status OK. */
  end(): void;
  /** Ends the call with an error status. */
  fail(code: GrpcStatusCode, details: string): void;
  readonly ended: boolean;
}

export interface GrpcTransportOptions {
  /** Largest request message accepted, in bytes (after decompression); larger ones are RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
}

export interface GrpcTransport {
  readonly port: number;
  /**
   * Closes the listener and sends GOAWAY on every connection: calls already started finish, new ones go
   * elsewhere. Resolves once every connection has closed.
   */
  close(): Promise<void>;
  /** Destroys every connection now. */
  destroy(): void;
}

/** Largest request message the servers accept (Envoy's with_request_body can carry a body up to its own limit). */
export const MAX_RECEIVE_MESSAGE_BYTES = 8 * 1024 * 1024;

const MESSAGE_HEADER_BYTES = 5;
const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0' };
/** The encodings a request may be compressed with (the response is never compressed). */
const ACCEPT_ENCODING = 'identity,deflate,gzip';

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

function ignoreError(): void {
  // A reset stream or a dropped connection is the client's business; the call is simply over.
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** The last `grpc-timeout` read: Envoy sends its cluster's timeout, the same text on every Check. */
let lastTimeoutText = '';
let lastTimeoutMs: number | undefined;

/** A `grpc-timeout` value (1–8 digits and a unit, PROTOCOL-HTTP2.md) in ms; undefined when malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  if (value === lastTimeoutText) return lastTimeoutMs;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  lastTimeoutText = value;
  lastTimeoutMs = m ? Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]! : undefined;
  return lastTimeoutMs;
}

/** grpc-message is percent-encoded: printable ASCII except '%' goes as is. */
export function encodeGrpcMessage(details: string): string {
  return /^[\x20-\x24\x26-\x7e]*$/.test(details) ? details : encodeURIComponent(details);
}

function statusHeaders(code: GrpcStatusCode, details: string): http2.OutgoingHttpHeaders {
  return { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(details) };
}

/** Answers with headers and status in one HEADERS frame (the protocol's "trailers-only" response). */
function trailersOnly(stream: http2.ServerHttp2Stream, code: GrpcStatusCode, details: string, extra?: http2.OutgoingHttpHeaders): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ...RESPONSE_HEADERS, ...extra, ...statusHeaders(code, details) }, { endStream: true });
}

function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, MESSAGE_HEADER_BYTES);
  return out;
}

class GrpcError extends Error {
  constructor(
    readonly code: GrpcStatusCode,
    message: string,
  ) {
    super(message);
  }
}

type Decompress = (message: Buffer, maxOutputLength: number) => Buffer;

const DECOMPRESSORS: Record<string, Decompress> = {
  gzip: (m, maxOutputLength) => zlib.gunzipSync(m, { maxOutputLength }),
  deflate: (m, maxOutputLength) => zlib.inflateSync(m, { maxOutputLength }),
};

/** Splits a request body into messages as its chunks arrive; throws GrpcError on a bad or oversized one. */
class MessageReader {
  private pending: Buffer | undefined;

  constructor(
    private readonly maxBytes: number,
    private readonly decompress: Decompress | undefined,
  ) {}

  /** The complete messages `chunk` finishes, in order. */
  push(chunk: Buffer, into: Buffer[]): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (buf.length >= MESSAGE_HEADER_BYTES) {
      const compressed = buf[0]!;
      const length = buf.readUInt32BE(1);
      if (compressed > 1) throw new GrpcError(GrpcStatus.INTERNAL, 'invalid message flag');
      if (length > this.maxBytes) {
        throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `request message larger than max (${length} vs. ${this.maxBytes})`);
      }
      if (buf.length < MESSAGE_HEADER_BYTES + length) break;
      const body = buf.subarray(MESSAGE_HEADER_BYTES, MESSAGE_HEADER_BYTES + length);
      into.push(compressed === 1 ? this.inflate(body) : body);
      buf = buf.subarray(MESSAGE_HEADER_BYTES + length);
    }
    if (buf.length > 0) this.pending = buf;
  }

  /** True when the body ended inside a message. */
  get truncated(): boolean {
    return this.pending !== undefined;
  }

  private inflate(body: Buffer): Buffer {
    if (!this.decompress) throw new GrpcError(GrpcStatus.INTERNAL, 'compressed message without grpc-encoding');
    try {
      return this.decompress(body, this.maxBytes);
    } catch (err) {
      const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      throw tooLarge
        ? new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `request message larger than max (${this.maxBytes}) once decompressed`)
        : new GrpcError(GrpcStatus.INTERNAL, 'request message does not decompress');
    }
  }
}

class ServerStreamCall<Req, Res> extends EventEmitter implements StreamCall<Req, Res> {
  ended = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly encode: (response: Res) => Uint8Array,
  ) {
    super();
  }

  write(response: Res): void {
    if (this.ended || this.stream.destroyed) return;
    let body: Buffer;
    try {
      body = frame(this.encode(response));
    } catch {
      this.fail(GrpcStatus.INTERNAL, 'response message does not encode');
      return;
    }
    if (!this.stream.headersSent) this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    this.stream.write(body);
  }

  end(): void {
    this.finish(OK_TRAILERS);
  }

  fail(code: GrpcStatusCode, details: string): void {
    this.finish(statusHeaders(code, details));
  }

  private finish(trailers: http2.OutgoingHttpHeaders): void {
    if (this.ended) return;
    this.ended = true;
    const stream = this.stream;
    if (stream.destroyed) return;
    if (!stream.headersSent) {
      stream.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
      return;
    }
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end();
  }
}

export async function startGrpcTransport(
  listen: string,
  methods: readonly GrpcMethod[],
  options: GrpcTransportOptions,
): Promise<GrpcTransport> {
  const byPath = new Map<string, GrpcMethod>(methods.map((m) => [m.path, m]));
  const sessions = new Set<http2.ServerHttp2Session>();

  // Envoy multiplexes every Check of a worker thread on one connection: no per-connection stream cap, and room
  // for a few maximum-size messages in flight.
  const server = http2.createServer({ maxSessionMemory: 64, settings: { maxConcurrentStreams: 2 ** 31 - 1 } });
  server.on('session', (session) => {
    sessions.add(session);
    session.on('error', ignoreError);
    session.once('close', () => sessions.delete(session));
  });

  server.on('stream', (stream, headers) => {
    stream.on('error', ignoreError);
    const method = byPath.get(headers[':path'] ?? '');
    if (headers[':method'] !== 'POST') {
      stream.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    if (!method) {
      trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${String(headers[':path'])}`);
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    const encoding = headers['grpc-encoding'];
    let decompress: Decompress | undefined;
    if (encoding !== undefined && encoding !== 'identity') {
      decompress = typeof encoding === 'string' ? DECOMPRESSORS[encoding] : undefined;
      if (!decompress) {
        trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `unsupported grpc-encoding ${String(encoding)}`, {
          'grpc-accept-encoding': ACCEPT_ENCODING,
        });
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return;
      }
    }
    const reader = new MessageReader(options.maxReceiveMessageBytes, decompress);
    if (method.kind === 'unary') {
      const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
      serveUnary(stream, method, reader, timeoutMs === undefined ? undefined : Date.now() + timeoutMs);
    } else serveStreaming(stream, method, reader);
  });

  const port = await new Promise<number>((resolve, reject) => {
    const { host, port: wanted } = splitHostPort(listen);
    server.once('error', reject);
    server.listen(wanted, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : wanted);
    });
  });

  return {
    port,
    close() {
      return new Promise<void>((resolve) => {
        let pending = sessions.size + 1;
        const done = () => {
          if (--pending === 0) resolve();
        };
        server.close(done);
        for (const session of sessions) {
          if (session.closed || session.destroyed) done();
          else {
            session.once('close', done);
            session.close();
          }
        }
      });
    },
    destroy() {
      for (const session of sessions) session.destroy();
      server.close();
    },
  };
}

function serveUnary(
  stream: http2.ServerHttp2Stream,
  method: UnaryMethod<unknown, unknown>,
  reader: MessageReader,
  deadline: number | undefined,
): void {
  const messages: Buffer[] = [];
  let failed = false;
  stream.on('data', (chunk: Buffer) => {
    if (failed) return;
    try {
      reader.push(chunk, messages);
    } catch (err) {
      failed = true;
      answerError(stream, err);
    }
  });
  stream.once('end', () => {
    if (failed) return;
    if (messages.length !== 1 || reader.truncated) {
      const got = reader.truncated ? 'a truncated message' : `${messages.length} messages`;
      trailersOnly(stream, GrpcStatus.INTERNAL, `a unary call takes one request message, got ${got}`);
      return;
    }
    let request: unknown;
    try {
      request = method.decode(messages[0]!);
    } catch {
      trailersOnly(stream, GrpcStatus.INTERNAL, 'request message does not decode');
      return;
    }
    let answered = false;
    const reply: UnaryReply<unknown> = {
      ok(response) {
        if (answered) return;
        answered = true;
        if (stream.destroyed) return;
        let body: Buffer;
        try {
          body = frame(method.encode(response));
        } catch {
          // A response that cannot be encoded is our bug: the call fails, the server does not.
          trailersOnly(stream, GrpcStatus.INTERNAL, 'response message does not encode');
          return;
        }
        stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', sendOkTrailers);
        stream.end(body);
      },
      fail(code, details) {
        if (answered) return;
        answered = true;
        trailersOnly(stream, code, details);
      },
    };
    try {
      method.handle(request, reply, deadline);
    } catch {
      // A handler that throws is our bug: its call fails INTERNAL (unless it answered first), the server goes on.
      reply.fail(GrpcStatus.INTERNAL, 'internal error');
    }
  });
}

function serveStreaming(stream: http2.ServerHttp2Stream, method: StreamingMethod<unknown, unknown>, reader: MessageReader): void {
  const call = new ServerStreamCall(stream, method.encode);
  const messages: Buffer[] = [];
  // A stream that closes before the call ended was cancelled by the client (or its connection went away).
  stream.once('close', () => {
    if (!call.ended) {
      call.ended = true;
      emitSafely(call, 'cancelled');
    }
    emitSafely(call, 'close');
  });
  try {
    method.handle(call);
  } catch {
    call.fail(GrpcStatus.INTERNAL, 'internal error');
    return;
  }
  stream.on('data', (chunk: Buffer) => {
    if (call.ended) return;
    try {
      reader.push(chunk, messages);
    } catch (err) {
      const e = err instanceof GrpcError ? err : new GrpcError(GrpcStatus.INTERNAL, 'internal error');
      call.fail(e.code, e.message);
      return;
    }
    for (const message of messages) {
      let request: unknown;
      try {
        request = method.decode(message);
      } catch {
        call.fail(GrpcStatus.INTERNAL, 'request message does not decode');
        return;
      }
      if (!emitSafely(call, 'data', request)) return;
    }
    messages.length = 0;
  });
  // A reset also ends the readable side, before 'aborted': only an end the next turn still finds unaborted is
  // the client's half-close.
  stream.once('end', () =>
    setImmediate(() => {
      if (call.ended || stream.aborted || stream.destroyed) return;
      if (reader.truncated) call.fail(GrpcStatus.INTERNAL, 'the request stream ended inside a message');
      else emitSafely(call, 'end');
    }),
  );
}

/**
 * Emits an event to the handler's listeners; one that throws (our bug) fails its call INTERNAL instead of
 * reaching the process as an uncaught exception. False when it threw.
 */
function emitSafely(call: ServerStreamCall<unknown, unknown>, event: string, ...args: unknown[]): boolean {
  try {
    call.emit(event, ...args);
    return true;
  } catch {
    call.fail(GrpcStatus.INTERNAL, 'internal error');
    return false;
  }
}

function answerError(stream: http2.ServerHttp2Stream, err: unknown): void {
  const e = err instanceof GrpcError ? err : new GrpcError(GrpcStatus.INTERNAL, 'internal error');
  trailersOnly(stream, e.code, e.message);
  // Stop reading the rest of an oversized or broken body.
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
