// A small ext_authz client: sends one CheckRequest the way Envoy would. Used by `egress-authz check`,
// the tests and the benchmarks.
import * as grpc from '@grpc/grpc-js';
import { CHECK_PATH, deserializeCheckResponse, serializeCheckRequest } from '../envoy/codec.js';

export interface CheckRequestInput {
  host: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** Send headers in header_map (raw bytes) as Envoy does with encode_raw_headers. */
  rawHeaders?: boolean;
  principal?: string;
  sourceAddress?: string;
  contextExtensions?: Record<string, string>;
  body?: string;
}

/** The CheckRequest message (protobufjs object form) Envoy would send for this request. */
export function buildCheckRequest(r: CheckRequestInput): Record<string, unknown> {
  const method = (r.method ?? 'GET').toUpperCase();
  const path = r.path ?? '/';
  const headers: Record<string, string> = {
    ':authority': r.host,
    ':method': method,
    ':path': path,
    ':scheme': 'http',
  };
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = v;
  const http: Record<string, unknown> = {
    id: String(Math.floor(Math.random() * 2 ** 52)),
    method,
    path,
    host: r.host,
    scheme: 'http',
    protocol: 'HTTP/1.1',
  };
  if (r.rawHeaders) {
    http.headerMap = { headers: Object.entries(headers).map(([key, v]) => ({ key, rawValue: Buffer.from(v) })) };
  } else {
    http.headers = headers;
  }
  if (r.body !== undefined) http.body = r.body;
  const now = Date.now();
  return {
    attributes: {
      source: {
        address: { socketAddress: { address: r.sourceAddress ?? '10.0.0.1', portValue: 40000 } },
        principal: r.principal ?? '',
      },
      destination: { address: { socketAddress: { address: '10.0.0.2', portValue: 8080 } } },
      request: { time: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 }, http },
      contextExtensions: r.contextExtensions ?? {},
    },
  };
}

export interface CheckResult {
  allowed: boolean;
  grpcStatus: number;
  httpStatus: number;
  /** Upstream request headers set (allow) or denial headers (deny). */
  headers: Array<{ key: string; value: string; appendAction: string; append?: boolean }>;
  headersToRemove: string[];
  responseHeadersToAdd: Array<{ key: string; value: string }>;
  queryParametersToSet: Array<{ key: string; value: string }>;
  queryParametersToRemove: string[];
  body: string;
  message: string;
  dynamicMetadata?: unknown;
  raw: Record<string, unknown>;
}

type HeaderOpt = { header?: { key?: string; value?: string }; appendAction?: string; append?: { value?: boolean } };

function headerList(list: unknown): CheckResult['headers'] {
  return ((list as HeaderOpt[] | undefined) ?? []).map((h) => ({
    key: h.header?.key ?? '',
    value: h.header?.value ?? '',
    appendAction: h.appendAction ?? 'APPEND_IF_EXISTS_OR_ADD',
    append: h.append ? (h.append.value ?? false) : undefined,
  }));
}

export function interpretCheckResponse(raw: Record<string, unknown>): CheckResult {
  const status = (raw.status as { code?: number; message?: string } | undefined) ?? {};
  const code = status.code ?? 0;
  const ok = (raw.okResponse as Record<string, unknown> | undefined) ?? {};
  const denied = (raw.deniedResponse as Record<string, unknown> | undefined) ?? {};
  const allowed = code === 0;
  const deniedStatus = (denied.status as { code?: string | number } | undefined)?.code;
  const statusNum = typeof deniedStatus === 'number' ? deniedStatus : deniedStatus ? STATUS_BY_NAME[deniedStatus] ?? 403 : 403;
  return {
    allowed,
    grpcStatus: code,
    httpStatus: allowed ? 200 : statusNum,
    headers: headerList(allowed ? ok.headers : denied.headers),
    headersToRemove: (ok.headersToRemove as string[] | undefined) ?? [],
    responseHeadersToAdd: headerList(ok.responseHeadersToAdd),
    queryParametersToSet: (ok.queryParametersToSet as Array<{ key: string; value: string }> | undefined) ?? [],
    queryParametersToRemove: (ok.queryParametersToRemove as string[] | undefined) ?? [],
    body: (denied.body as string | undefined) ?? '',
    message: status.message ?? '',
    dynamicMetadata: raw.dynamicMetadata,
    raw,
  };
}

const STATUS_BY_NAME: Record<string, number> = {
  Unauthorized: 401, Forbidden: 403, TooManyRequests: 429, ServiceUnavailable: 503, BadRequest: 400,
  InternalServerError: 500, NotFound: 404, PaymentRequired: 402, GatewayTimeout: 504, OK: 200,
};

export class CheckClient {
  private readonly client: grpc.Client;
  constructor(addr: string) {
    this.client = new grpc.Client(addr, grpc.credentials.createInsecure());
  }

  /** Sends raw bytes (for malformed-input tests) or a request; resolves with the decoded response. */
  checkRaw(body: Buffer, deadlineMs = 5000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        CHECK_PATH,
        (b: Buffer) => b,
        deserializeCheckResponse,
        body,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  async check(r: CheckRequestInput, deadlineMs = 5000): Promise<CheckResult> {
    return interpretCheckResponse(await this.checkRaw(serializeCheckRequest(buildCheckRequest(r)), deadlineMs));
  }

  close(): void {
    this.client.close();
  }
}
