// Codec micro-benchmark: CheckRequest decode and CheckResponse encode, side by side in one process:
//   proto-loader  @grpc/proto-loader's (de)serializers: protobufjs decode + toObject / fromObject + encode
//   protobufjs    the generated decoder to message objects; encode of plain objects with the generated encoder
//                 (what egress-authz encodes with)
//   egress-authz  decode with our own CheckRequest decoder (src/envoy/check-request-decoder.ts)
//   bufbuild      @bufbuild/protobuf 2 by reflection (fromBinary / create + toBinary) on a registry built from
//                 our .proto files (no protoc-gen-es step: see bench/lib/bufbuild-registry.ts)
// `npm run bench -- codec`
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as protoLoader from '@grpc/proto-loader';
import fs from 'node:fs';
import path from 'node:path';
import { buildCheckRequest } from '../src/cli/check-client.js';
import {
  CheckRequestType,
  CheckResponseType,
  type ProtoCheckRequest,
  PROTO_DIR,
  deserializeCheckRequest,
  protoRoot,
  serializeCheckRequest,
  serializeCheckResponse,
} from '../src/envoy/codec.js';
import { toCheckResponse } from '../src/envoy/response.js';
import { toRequestView } from '../src/envoy/request.js';
import { allow, type AllowDecision } from '../src/pipeline/decision.js';
import { startBackends } from './lib/backends.js';
import { bufbuildRegistry, messageDesc } from './lib/bufbuild-registry.js';
import { describeMachine, machineInfo } from './lib/machine.js';
import { median } from './lib/stats.js';

interface Measured {
  name: string;
  nsPerOp: number;
}

let sink = 0;

/** ns per call: a warm-up, then the median of 5 timed batches of ≥ 300 ms each. */
function measure(name: string, fn: () => unknown): Measured {
  const runFor = (ms: number): number => {
    let n = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(ms * 1e6);
    let now = start;
    while (now < end) {
      for (let i = 0; i < 200; i++) {
        const r = fn();
        sink ^= r === undefined ? 0 : 1;
      }
      n += 200;
      now = process.hrtime.bigint();
    }
    return Number(now - start) / n;
  };
  runFor(300);
  const samples = Array.from({ length: 5 }, () => runFor(300));
  return { name, nsPerOp: median(samples) };
}

function table(title: string, rows: Measured[]): string {
  const base = rows.find((r) => r.name.includes('(egress-authz'))!.nsPerOp;
  const lines = [`| ${title} | µs per call | calls/s | vs egress-authz |`, '|---|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(`| ${r.name} | ${(r.nsPerOp / 1000).toFixed(2)} | ${Math.round(1e9 / r.nsPerOp).toLocaleString('en-US')} | ${(r.nsPerOp / base).toFixed(2)}× |`);
  }
  return lines.join('\n');
}

export async function runCodecBenchmark(): Promise<string> {
  // A realistic request: the credential-injection scenario's, with a real RS256 ServiceAccount token.
  const backends = await startBackends();
  const token = backends.workloadToken('chat-frontend');
  await backends.close();
  const requestBytes = serializeCheckRequest(
    buildCheckRequest({
      host: 'api.openai.com',
      method: 'POST',
      path: '/v1/chat/completions',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'x-request-id': '3f1c9a52-bench-4b7e-9d2a-6c1e8f0a7b13',
        'user-agent': 'python-httpx/0.27.0',
      },
    }),
  );
  const decision: AllowDecision = {
    ...allow('gateway-system/openai-credential-injection', 'authorization'),
    headers: [{ key: 'authorization', value: 'Bearer sk-bench-chat-frontend-0123456789abcdef', action: 'overwrite' }],
  };
  const ourResponse = toCheckResponse(decision);

  // @grpc/proto-loader with the options grpc examples use.
  const loaded = protoLoader.loadSync('ext_authz.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_DIR],
  });
  const loaderCheck = (loaded['envoy.service.auth.v3.Authorization'] as protoLoader.ServiceDefinition).Check!;
  const loaderResponse = {
    status: { code: 0 },
    ok_response: {
      headers: [{ header: { key: 'authorization', value: 'Bearer sk-bench-chat-frontend-0123456789abcdef' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', append: { value: false } }],
    },
  };

  const registry = bufbuildRegistry(protoRoot);
  const CheckRequestDesc = messageDesc(registry, 'envoy.service.auth.v3.CheckRequest');
  const CheckResponseDesc = messageDesc(registry, 'envoy.service.auth.v3.CheckResponse');
  const bufResponseInit = {
    status: { code: 0 },
    httpResponse: {
      case: 'okResponse',
      value: { headers: [{ header: { key: 'authorization', value: 'Bearer sk-bench-chat-frontend-0123456789abcdef' }, appendAction: 2, append: false }] },
    },
  };

  // Same answers before timing anything.
  const expectHeader = `Bearer ${token}`;
  const fromLoader = loaderCheck.requestDeserialize(requestBytes) as { attributes: { request: { http: { headers: Record<string, string> } } } };
  const fromOurs = deserializeCheckRequest(requestBytes);
  const fromBuf = fromBinary(CheckRequestDesc, requestBytes) as unknown as { attributes: { request: { http: { headers: Record<string, string> } } } };
  for (const [name, h] of [
    ['proto-loader', fromLoader.attributes.request.http.headers],
    ['egress-authz', toRequestView(fromOurs).headers],
    ['protobufjs', toRequestView(CheckRequestType.decode(requestBytes) as unknown as ProtoCheckRequest).headers],
    ['bufbuild', fromBuf.attributes.request.http.headers],
  ] as const) {
    if (h?.authorization !== expectHeader) throw new Error(`${name} decoded a different request`);
  }
  const canonical = (bytes: Uint8Array) => JSON.stringify(CheckResponseType.toObject(CheckResponseType.decode(bytes), { enums: String, longs: Number }));
  const want = canonical(serializeCheckResponse(ourResponse));
  const loaderBytes = loaderCheck.responseSerialize(loaderResponse);
  const bufBytes = toBinary(CheckResponseDesc, create(CheckResponseDesc, bufResponseInit as never));
  if (canonical(loaderBytes) !== want) throw new Error(`proto-loader encoded a different response: ${canonical(loaderBytes)} vs ${want}`);
  if (canonical(bufBytes) !== want) throw new Error(`bufbuild encoded a different response: ${canonical(bufBytes)} vs ${want}`);

  const decode = [
    measure('proto-loader (decode + toObject)', () => loaderCheck.requestDeserialize(requestBytes)),
    measure('protobufjs decode (the generated decoder)', () => CheckRequestType.decode(requestBytes)),
    measure('@bufbuild/protobuf fromBinary', () => fromBinary(CheckRequestDesc, requestBytes)),
    measure('CheckRequest decoder (egress-authz, src/envoy/check-request-decoder.ts)', () => deserializeCheckRequest(requestBytes)),
    measure('protobufjs decode + toRequestView', () => toRequestView(CheckRequestType.decode(requestBytes) as unknown as ProtoCheckRequest)),
    measure('decoder + toRequestView (egress-authz, what the server does)', () => toRequestView(deserializeCheckRequest(requestBytes))),
  ];
  const encode = [
    measure('proto-loader (fromObject + encode)', () => loaderCheck.responseSerialize(loaderResponse)),
    measure('protobufjs encode (egress-authz)', () => serializeCheckResponse(ourResponse)),
    measure('@bufbuild/protobuf create + toBinary', () => toBinary(CheckResponseDesc, create(CheckResponseDesc, bufResponseInit as never))),
    measure('toCheckResponse + protobufjs encode (egress-authz, what the server does)', () => serializeCheckResponse(toCheckResponse(decision))),
  ];
  const out = [
    `Codec micro-benchmark — ${describeMachine(machineInfo())}`,
    `protobufjs ${protobufVersion('protobufjs')} (egress-authz), proto-loader's protobufjs ${protobufVersion(path.join('@grpc', 'proto-loader', 'node_modules', 'protobufjs'))}, @bufbuild/protobuf ${protobufVersion(path.join('@bufbuild', 'protobuf'))}`,
    `CheckRequest: ${requestBytes.length} bytes (RS256 ServiceAccount token in the authorization header); CheckResponse: ${serializeCheckResponse(ourResponse).length} bytes (allow + injected header).`,
    '',
    table('CheckRequest decode', decode),
    '',
    table('CheckResponse encode', encode),
  ];
  console.log(out.join('\n'));
  // Keeps the results observable so the JIT cannot drop the calls.
  if (sink === 42) console.log('');
  return out.join('\n');
}

function protobufVersion(pkg: string): string {
  try {
    const file = path.resolve(import.meta.dirname, '..', 'node_modules', pkg, 'package.json');
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}
