// The floor: a grpc-js server that answers every Check with a fixed OkHttpResponse and does nothing else.
// It decodes the request and encodes the response with egress-authz's own codec (src/envoy/codec.ts) and
// server options, so the difference between the two is the authorization work, not the transport.
// Usage: node --import tsx bench/floor-server.ts --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { deserializeCheckRequest, serializeCheckResponse } from '../src/envoy/codec.js';

function flag(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`floor-server: --${name} host:port is required`);
  return v;
}

const OK_RESPONSE = { status: { code: 0 }, okResponse: {} };
let answered = 0;

const service: grpc.ServiceDefinition = {
  Check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: unknown) => v as Buffer,
    requestDeserialize: deserializeCheckRequest,
    responseSerialize: serializeCheckResponse,
    responseDeserialize: (b: Buffer) => b,
  },
};

const server = new grpc.Server({
  'grpc.max_receive_message_length': 8 * 1024 * 1024,
  'grpc.keepalive_permit_without_calls': 1,
});
server.addService(service, {
  Check: (_call: grpc.ServerUnaryCall<unknown, object>, callback: grpc.sendUnaryData<object>) => {
    answered++;
    callback(null, OK_RESPONSE);
  },
});

await new Promise<void>((resolve, reject) =>
  server.bindAsync(flag('listen'), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
);

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
  server.tryShutdown(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
