// Kyverno's `envoy` CEL library (envoy.kyverno.io): builders for ext_authz responses.
// Builders are immutable (each call returns a copy) because one expression may reuse a value in two branches.
import type { Environment } from '@marcbachmann/cel-js';
import type { HeaderMutation, QueryParam } from '../pipeline/decision.js';

export class EnvoyNamespace {}

export class EnvoyHeaderValueOption {
  constructor(
    readonly key: string,
    readonly value: string,
    // Kyverno builds the proto with no append action set: Envoy's default, APPEND_IF_EXISTS_OR_ADD.
    readonly action: HeaderMutation['action'] = 'append',
    readonly keepEmptyValue = false,
  ) {}
  toMutation(): HeaderMutation {
    return { key: this.key, value: this.value, action: this.action, keepEmptyValue: this.keepEmptyValue };
  }
}

export class EnvoyQueryParameter {
  constructor(
    readonly key: string,
    readonly value: string,
  ) {}
}

export class EnvoyOkHttpResponse {
  constructor(
    readonly headers: readonly HeaderMutation[] = [],
    readonly headersToRemove: readonly string[] = [],
    readonly responseHeadersToAdd: readonly HeaderMutation[] = [],
    readonly queryParamsToSet: readonly QueryParam[] = [],
    readonly queryParamsToRemove: readonly string[] = [],
  ) {}
}

export class EnvoyDeniedHttpResponse {
  constructor(
    readonly code: number,
    readonly body: string = '',
    readonly headers: readonly HeaderMutation[] = [],
  ) {}
}

export class EnvoyCheckResponse {
  constructor(
    readonly http: EnvoyOkHttpResponse | EnvoyDeniedHttpResponse,
    readonly message: string = '',
    readonly metadata: Readonly<Record<string, unknown>> | undefined = undefined,
  ) {}
}

function toPlain(v: unknown): unknown {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(k)] = toPlain(val);
    return o;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  if (typeof v === 'bigint') return Number(v);
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) o[k] = toPlain(val);
    return o;
  }
  return v;
}

function httpStatus(code: bigint): number {
  const n = Number(code);
  // HttpStatus.code has PGV not_in: 0 and defined_only; Envoy treats unset as 403.
  if (!Number.isInteger(n) || n < 100 || n > 599) throw new Error(`envoy.Denied: invalid HTTP status ${n}`);
  return n;
}

export function registerEnvoyLibrary(env: Environment): void {
  const ok = EnvoyOkHttpResponse;
  const withOk = (r: EnvoyOkHttpResponse, patch: Partial<EnvoyOkHttpResponse>): EnvoyOkHttpResponse =>
    new ok(
      patch.headers ?? r.headers,
      patch.headersToRemove ?? r.headersToRemove,
      patch.responseHeadersToAdd ?? r.responseHeadersToAdd,
      patch.queryParamsToSet ?? r.queryParamsToSet,
      patch.queryParamsToRemove ?? r.queryParamsToRemove,
    );
  env
    .registerType('EnvoyNamespace', EnvoyNamespace)
    .registerType('envoy.OkHttpResponse', EnvoyOkHttpResponse)
    .registerType('envoy.DeniedHttpResponse', EnvoyDeniedHttpResponse)
    .registerType('envoy.CheckResponse', EnvoyCheckResponse)
    .registerType('envoy.HeaderValueOption', EnvoyHeaderValueOption)
    .registerType('envoy.QueryParameter', EnvoyQueryParameter)
    .registerConstant('envoy', 'EnvoyNamespace', new EnvoyNamespace())
    .registerFunction('EnvoyNamespace.Allowed(): envoy.OkHttpResponse', () => new EnvoyOkHttpResponse())
    .registerFunction(
      'EnvoyNamespace.Denied(int): envoy.DeniedHttpResponse',
      (_ns: EnvoyNamespace, code: bigint) => new EnvoyDeniedHttpResponse(httpStatus(code)),
    )
    .registerFunction(
      'EnvoyNamespace.Header(string, string): envoy.HeaderValueOption',
      (_ns: EnvoyNamespace, k: string, v: string) => new EnvoyHeaderValueOption(k, v),
    )
    .registerFunction(
      'EnvoyNamespace.QueryParam(string, string): envoy.QueryParameter',
      (_ns: EnvoyNamespace, k: string, v: string) => new EnvoyQueryParameter(k, v),
    )
    .registerFunction(
      'envoy.HeaderValueOption.KeepEmptyValue(): envoy.HeaderValueOption',
      (h: EnvoyHeaderValueOption) => new EnvoyHeaderValueOption(h.key, h.value, h.action, true),
    )
    .registerFunction(
      'envoy.HeaderValueOption.KeepEmptyValue(bool): envoy.HeaderValueOption',
      (h: EnvoyHeaderValueOption, keep: boolean) => new EnvoyHeaderValueOption(h.key, h.value, h.action, keep),
    )
    .registerFunction(
      'envoy.OkHttpResponse.WithHeader(envoy.HeaderValueOption): envoy.OkHttpResponse',
      (r: EnvoyOkHttpResponse, h: EnvoyHeaderValueOption) => withOk(r, { headers: [...r.headers, h.toMutation()] }),
    )
    .registerFunction(
      'envoy.OkHttpResponse.WithoutHeader(string): envoy.OkHttpResponse',
      (r: EnvoyOkHttpResponse, k: string) => withOk(r, { headersToRemove: [...r.headersToRemove, k] }),
    )
    .registerFunction(
      'envoy.OkHttpResponse.WithResponseHeader(envoy.HeaderValueOption): envoy.OkHttpResponse',
      (r: EnvoyOkHttpResponse, h: EnvoyHeaderValueOption) =>
        withOk(r, { responseHeadersToAdd: [...r.responseHeadersToAdd, h.toMutation()] }),
    )
    .registerFunction(
      'envoy.OkHttpResponse.WithQueryParam(envoy.QueryParameter): envoy.OkHttpResponse',
      (r: EnvoyOkHttpResponse, q: EnvoyQueryParameter) =>
        withOk(r, { queryParamsToSet: [...r.queryParamsToSet, { key: q.key, value: q.value }] }),
    )
    .registerFunction(
      'envoy.OkHttpResponse.WithoutQueryParam(string): envoy.OkHttpResponse',
      (r: EnvoyOkHttpResponse, k: string) => withOk(r, { queryParamsToRemove: [...r.queryParamsToRemove, k] }),
    )
    .registerFunction(
      'envoy.DeniedHttpResponse.WithBody(string): envoy.DeniedHttpResponse',
      (r: EnvoyDeniedHttpResponse, body: string) => new EnvoyDeniedHttpResponse(r.code, body, r.headers),
    )
    .registerFunction(
      'envoy.DeniedHttpResponse.WithHeader(envoy.HeaderValueOption): envoy.DeniedHttpResponse',
      (r: EnvoyDeniedHttpResponse, h: EnvoyHeaderValueOption) =>
        new EnvoyDeniedHttpResponse(r.code, r.body, [...r.headers, h.toMutation()]),
    )
    .registerFunction(
      'envoy.OkHttpResponse.Response(): envoy.CheckResponse',
      (r: EnvoyOkHttpResponse) => new EnvoyCheckResponse(r),
    )
    .registerFunction(
      'envoy.DeniedHttpResponse.Response(): envoy.CheckResponse',
      (r: EnvoyDeniedHttpResponse) => new EnvoyCheckResponse(r),
    )
    .registerFunction(
      'envoy.CheckResponse.WithMessage(string): envoy.CheckResponse',
      (r: EnvoyCheckResponse, m: string) => new EnvoyCheckResponse(r.http, m, r.metadata),
    )
    .registerFunction(
      'envoy.CheckResponse.WithMetadata(map): envoy.CheckResponse',
      (r: EnvoyCheckResponse, md: unknown) =>
        new EnvoyCheckResponse(r.http, r.message, toPlain(md) as Record<string, unknown>),
    );
}
