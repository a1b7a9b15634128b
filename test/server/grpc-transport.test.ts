// The gRPC transport on node:http2, against two real clients on loopback: grpc-js (what our tests and tools
// use) and a bare HTTP/2 client for what grpc-js never sends (compressed frames we build, bad content types,
// several messages in a unary call).
import http2 from 'node:http2';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GrpcStatus,
  encodeGrpcMessage,
  parseGrpcTimeout,
  startGrpcTransport,
  type GrpcMethod,
  type GrpcTransport,
  type StreamCall,
} from '../../src/server/grpc-transport.js';

const MAX = 1024;
const text = (b: Buffer) => b.toString('utf8');
const bytes = (s: string) => Buffer.from(s, 'utf8');

interface Fixture {
  transport: GrpcTransport;
  client: grpc.Client;
  cancelled: string[];
  /** 'never' calls received (they are not answered). */
  never: number;
  /** Resolves the pending 'late' call. */
  release: () => void;
}

/** The responses' encoder, which fails on one value (a bug in an encoder must fail the call, not the server). */
function encodeUnlessUnencodable(res: string): Buffer {
  if (res === 'UNENCODABLE') throw new Error('cannot encode');
  return bytes(res);
}

function methods(f: Pick<Fixture, 'cancelled' | 'never'> & { late: Array<() => void> }): GrpcMethod[] {
  return [
    {
      kind: 'unary',
      path: '/t.Test/Echo',
      decode: text,
      encode: encodeUnlessUnencodable,
      handle(req: string, reply) {
        if (req === 'fail') reply.fail(GrpcStatus.INVALID_ARGUMENT, 'bad ünïcode 100% input\n');
        else if (req === 'late') f.late.push(() => reply.ok('LATE'));
        else if (req === 'never') f.never++;
        else if (req === 'throw') throw new Error('handler bug');
        else reply.ok(req.toUpperCase());
      },
    },
    {
      kind: 'unary',
      path: '/t.Test/Throws',
      decode: () => {
        throw new Error('cannot decode');
      },
      encode: bytes,
      handle: () => undefined,
    },
    {
      kind: 'streaming',
      path: '/t.Test/Chat',
      decode: text,
      encode: encodeUnlessUnencodable,
      handle(call: StreamCall<string, string>) {
        call.on('data', (m) => {
          if (m === 'throw') throw new Error('listener bug');
          if (m === 'boom') call.fail(GrpcStatus.INVALID_ARGUMENT, 'no boom');
          else call.write(m === 'bad' ? 'UNENCODABLE' : m.toUpperCase());
        });
        call.on('end', () => call.end());
        call.on('cancelled', () => f.cancelled.push('chat'));
      },
    },
  ];
}

async function start(): Promise<Fixture & { late: Array<() => void> }> {
  const state = { cancelled: [] as string[], late: [] as Array<() => void>, never: 0 };
  const transport = await startGrpcTransport('127.0.0.1:0', methods(state), { maxReceiveMessageBytes: MAX });
  const client = new grpc.Client(`127.0.0.1:${transport.port}`, grpc.credentials.createInsecure());
  return {
    transport,
    client,
    cancelled: state.cancelled,
    late: state.late,
    get never() {
      return state.never;
    },
    release: () => state.late.splice(0).forEach((r) => r()),
  };
}

function unary(client: grpc.Client, path: string, arg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, bytes, text, arg, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  data: Buffer;
}

/** One request over a bare HTTP/2 connection: the status is in `headers` for a trailers-only answer. */
function raw(port: number, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (responseHeaders = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('close', () => {
      session.close();
      resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, trailers, data: Buffer.concat(chunks) });
    });
    req.end(body);
  });
}

function framed(message: Buffer, compressed = false, declaredLength = message.length): Buffer {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([header, message]);
}

const grpcStatusOf = (a: RawAnswer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);

describe('gRPC transport (node:http2)', () => {
  let f: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    f = await start();
  });
  afterAll(async () => {
    f.client.close();
    f.transport.destroy();
  });

  it('answers a unary call, and an error status whose message survives percent-encoding', async () => {
    expect(await unary(f.client, '/t.Test/Echo', 'hello')).toBe('HELLO');
    const err = (await unary(f.client, '/t.Test/Echo', 'fail').catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe('bad ünïcode 100% input\n');
    expect(encodeGrpcMessage('plain text: ok')).toBe('plain text: ok');
    expect(encodeGrpcMessage('100%')).toBe('100%25');
  });

  it('reads grpc-timeout in every unit and ignores a malformed one', () => {
    expect(parseGrpcTimeout('200m')).toBe(200);
    expect(parseGrpcTimeout('2S')).toBe(2000);
    expect(parseGrpcTimeout('1M')).toBe(60_000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('1500u')).toBeCloseTo(1.5);
    expect(parseGrpcTimeout('2000000n')).toBeCloseTo(2);
    for (const bad of ['', '200', 'm', '123456789m', '-1m', '1.5S', '10x', undefined]) expect(parseGrpcTimeout(bad)).toBeUndefined();
    // The same text twice (Envoy's case) and after another one gives the same answer.
    expect([parseGrpcTimeout('200m'), parseGrpcTimeout('200m'), parseGrpcTimeout('bad'), parseGrpcTimeout('bad'), parseGrpcTimeout('200m')]).toEqual([200, 200, undefined, undefined, 200]);
  });

  it('writes the answer as headers, one length-prefixed message, then grpc-status 0 in trailers', async () => {
    const a = await raw(f.transport.port, '/t.Test/Echo', framed(bytes('abc')));
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/grpc');
    expect(a.headers['grpc-status']).toBeUndefined();
    expect(a.trailers['grpc-status']).toBe('0');
    expect(a.data).toEqual(framed(bytes('ABC')));
  });

  it('accepts gzip and deflate compressed requests', async () => {
    for (const [encoding, compress] of [['gzip', zlib.gzipSync], ['deflate', zlib.deflateSync]] as const) {
      const a = await raw(f.transport.port, '/t.Test/Echo', framed(compress(bytes('zipped')), true), { 'grpc-encoding': encoding });
      expect(grpcStatusOf(a)).toBe(0);
      expect(a.data).toEqual(framed(bytes('ZIPPED')));
    }
  });

  it('refuses unknown encodings, unknown methods, other content types and other HTTP methods', async () => {
    const snappy = await raw(f.transport.port, '/t.Test/Echo', framed(bytes('x'), true), { 'grpc-encoding': 'snappy' });
    expect(grpcStatusOf(snappy)).toBe(GrpcStatus.UNIMPLEMENTED);
    expect(snappy.headers['grpc-accept-encoding']).toBe('identity,deflate,gzip');
    const unknown = await raw(f.transport.port, '/t.Test/Nope', framed(bytes('x')));
    expect(unknown.status).toBe(200);
    expect(grpcStatusOf(unknown)).toBe(GrpcStatus.UNIMPLEMENTED);
    expect(unknown.headers['grpc-message']).toBe('unknown method /t.Test/Nope');
    expect((await raw(f.transport.port, '/t.Test/Echo', framed(bytes('x')), { 'content-type': 'application/json' })).status).toBe(415);
    expect((await raw(f.transport.port, '/t.Test/Echo', Buffer.alloc(0), { ':method': 'PUT' })).status).toBe(405);
  });

  it('answers RESOURCE_EXHAUSTED to a message over the limit, declared or once decompressed', async () => {
    const declared = await raw(f.transport.port, '/t.Test/Echo', framed(Buffer.alloc(10), false, MAX + 1));
    expect(grpcStatusOf(declared)).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    const bomb = zlib.gzipSync(Buffer.alloc(MAX * 64));
    expect(bomb.length).toBeLessThan(MAX);
    const inflated = await raw(f.transport.port, '/t.Test/Echo', framed(bomb, true), { 'grpc-encoding': 'gzip' });
    expect(grpcStatusOf(inflated)).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    const err = (await unary(f.client, '/t.Test/Echo', 'y'.repeat(MAX + 1)).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it('answers INTERNAL to a unary call with two messages, a truncated one, a bad flag or an undecodable one', async () => {
    const two = await raw(f.transport.port, '/t.Test/Echo', Buffer.concat([framed(bytes('a')), framed(bytes('b'))]));
    expect(grpcStatusOf(two)).toBe(GrpcStatus.INTERNAL);
    expect(two.headers['grpc-message']).toBe('a unary call takes one request message, got 2 messages');
    const truncated = await raw(f.transport.port, '/t.Test/Echo', framed(bytes('abc')).subarray(0, 6));
    expect(grpcStatusOf(truncated)).toBe(GrpcStatus.INTERNAL);
    const none = await raw(f.transport.port, '/t.Test/Echo', Buffer.alloc(0));
    expect(grpcStatusOf(none)).toBe(GrpcStatus.INTERNAL);
    const flag = framed(bytes('a'));
    flag[0] = 7;
    expect(grpcStatusOf(await raw(f.transport.port, '/t.Test/Echo', flag))).toBe(GrpcStatus.INTERNAL);
    expect(grpcStatusOf(await raw(f.transport.port, '/t.Test/Echo', framed(bytes('a'), true)))).toBe(GrpcStatus.INTERNAL);
    expect(grpcStatusOf(await raw(f.transport.port, '/t.Test/Throws', framed(bytes('a'))))).toBe(GrpcStatus.INTERNAL);
    // A response that does not encode fails its call, and the server keeps serving.
    const unencodable = (await unary(f.client, '/t.Test/Echo', 'unencodable').catch((e: unknown) => e)) as grpc.ServiceError;
    expect(unencodable).toMatchObject({ code: grpc.status.INTERNAL, details: 'response message does not encode' });
    expect(await unary(f.client, '/t.Test/Echo', 'still')).toBe('STILL');
    // So does a handler that throws.
    const thrown = (await unary(f.client, '/t.Test/Echo', 'throw').catch((e: unknown) => e)) as grpc.ServiceError;
    expect(thrown).toMatchObject({ code: grpc.status.INTERNAL, details: 'internal error' });
    expect(await unary(f.client, '/t.Test/Echo', 'again')).toBe('AGAIN');
    // A message split over several DATA frames is reassembled.
    expect(await unary(f.client, '/t.Test/Echo', 'z'.repeat(MAX))).toBe('Z'.repeat(MAX));
  });

  it('streams both ways, ends with the handler status, and tells the handler when the client cancels', async () => {
    const call = f.client.makeBidiStreamRequest('/t.Test/Chat', bytes, text);
    const got: string[] = [];
    call.on('data', (m: string) => got.push(m));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    call.write('a');
    call.write('b');
    call.end();
    expect((await status).code).toBe(grpc.status.OK);
    expect(got).toEqual(['A', 'B']);

    /** The status a new Chat call ends with after the client writes `message`. */
    const statusAfter = (message: string): Promise<grpc.StatusObject> => {
      const chat = f.client.makeBidiStreamRequest('/t.Test/Chat', bytes, text);
      chat.on('error', () => undefined);
      const ended = new Promise<grpc.StatusObject>((resolve) => chat.on('status', resolve));
      chat.write(message);
      return ended;
    };
    expect(await statusAfter('boom')).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'no boom' });
    expect(await statusAfter('bad')).toMatchObject({ code: grpc.status.INTERNAL, details: 'response message does not encode' });
    expect(await statusAfter('throw')).toMatchObject({ code: grpc.status.INTERNAL, details: 'internal error' });

    const cancelled = f.client.makeBidiStreamRequest('/t.Test/Chat', bytes, text);
    cancelled.on('error', () => undefined);
    const first = new Promise((resolve) => cancelled.once('data', resolve));
    cancelled.write('x');
    await first;
    cancelled.cancel();
    await expect.poll(() => f.cancelled).toEqual(['chat']);
  });
});

describe('gRPC transport shutdown', () => {
  it('close() lets a started call finish, refuses new connections and resolves once they are closed', async () => {
    const f = await start();
    try {
      const late = unary(f.client, '/t.Test/Echo', 'late');
      await expect.poll(() => f.late.length).toBe(1);
      let closed = false;
      const closing = f.transport.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBe(false);
      f.release();
      expect(await late).toBe('LATE');
      await closing;
      const fresh = new grpc.Client(`127.0.0.1:${f.transport.port}`, grpc.credentials.createInsecure());
      const err = (await unary(fresh, '/t.Test/Echo', 'hi').catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      fresh.close();
    } finally {
      f.client.close();
      f.transport.destroy();
    }
  });

  it('destroy() ends calls that never answer', async () => {
    const f = await start();
    try {
      const never = unary(f.client, '/t.Test/Echo', 'never').catch((e: unknown) => e as grpc.ServiceError);
      await expect.poll(() => f.never).toBe(1);
      f.transport.destroy();
      expect([grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.CANCELLED]).toContain(((await never) as grpc.ServiceError).code);
    } finally {
      f.client.close();
    }
  });
});
