// The floors: servers that answer every Check with a fixed OkHttpResponse and do nothing else.
//   --transport grpc-js (default): a bare @grpc/grpc-js server, the floor the targets are set against.
//   --transport h2: egress-authz's own transport (src/server/grpc-transport.ts) with the same no-op handler, so
//     the table shows the part of a Check that is transport and the part that is authorization.
// Both decode the request and encode the response with egress-authz's codec (src/envoy/codec.ts).
// Usage: node --import tsx bench/floor-server.ts --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT [--transport h2]
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { CHECK_PATH, deserializeCheckRequest, serializeCheckResponse } from '../src/envoy/codec.js';
import { MAX_RECEIVE_MESSAGE_BYTES, startGrpcTransport } from '../src/server/grpc-transport.js';

function flag(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (!v) throw new Error(`floor-server: --${name} is required`);
  return v;
}

const OK_RESPONSE = { status: { code: 0 }, okResponse: {} };
let answered = 0;

async function startGrpcJsFloor(listen: string): Promise<() => Promise<void>> {
  const service: grpc.ServiceDefinition = {
    Check: {
      path: CHECK_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: unknown) => v as Buffer,
      requestDeserialize: deserializeCheckRequest,
      responseSerialize: serializeCheckResponse,
      responseDeserialize: (b: Buffer) => b,
    },
  };
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(service, {
    Check: (_call: grpc.ServerUnaryCall<unknown, object>, callback: grpc.sendUnaryData<object>) => {
      answered++;
      callback(null, OK_RESPONSE);
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  return () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
}

async function startTransportFloor(listen: string): Promise<() => Promise<void>> {
  const transport = await startGrpcTransport(
    listen,
    [
      {
        kind: 'unary',
        path: CHECK_PATH,
        decode: deserializeCheckRequest,
        encode: serializeCheckResponse,
        handle(_request: unknown, reply) {
          answered++;
          reply.ok(OK_RESPONSE);
        },
      },
    ],
    { maxReceiveMessageBytes: MAX_RECEIVE_MESSAGE_BYTES },
  );
  return () => transport.close();
}

const transport = flag('transport', 'grpc-js');
if (transport !== 'grpc-js' && transport !== 'h2') throw new Error(`floor-server: --transport is grpc-js or h2, not ${transport}`);
const stopGrpc = await (transport === 'h2' ? startTransportFloor : startGrpcJsFloor)(flag('listen'));

// The same counter name egress-authz exports, so the harness verifies both servers the same way.
const [adminHost, adminPort] = flag('admin-listen').split(':') as [string, string];
const admin = http.createServer((req, res) => {
  if (req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`egress_authz_checks_total{policy="floor",decision="allow",status="200"} ${answered}\n`);
  } else if (req.url === '/readyz') {
    res.writeHead(200).end('ok\n');
  } else {
    res.writeHead(404).end();
  }
});
admin.listen(Number(adminPort), adminHost);

const stop = () => {
  admin.close();
  void stopGrpc().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
