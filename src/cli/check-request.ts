// The CheckRequest Envoy would send for a simple request description. Used by `egress-authz check`, the policy
// tests and `explain`, the tests and the benchmarks. Its own module so that `serve` (explain endpoint) does not
// load the gRPC client with it.

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
