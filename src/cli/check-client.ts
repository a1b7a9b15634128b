// A small ext_authz client: sends one CheckRequest the way Envoy would. Used by `egress-authz check`,
// the tests and the benchmarks.
import * as grpc from '@grpc/grpc-js';
import { CHECK_PATH, deserializeCheckResponse, serializeCheckRequest } from '../envoy/codec.js';
import { buildCheckRequest, type CheckRequestInput } from './check-request.js';

export { buildCheckRequest, type CheckRequestInput };

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
