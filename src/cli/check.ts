// `egress-authz check`: send one Check to a running server and print what Envoy would do.
import { parseArgs, UsageError } from '../config.js';
import { renderExplanation, type Explanation } from '../policy/testing/explain.js';
import type { RequestSpec } from '../policy/testing/request.js';
import { EXPLAIN_PATH } from '../server/explain-endpoint.js';
import { CheckClient, type CheckResult } from './check-client.js';
import { consoleIo, type CliIo } from './io.js';

export const CHECK_USAGE = `usage: egress-authz check --addr HOST:PORT --host HOST [--method GET] [--path /] [-H 'name: value']...
                          [--principal SPIFFE_ID] [--context policy=NAME]... [--body TEXT] [--raw-headers] [--json]
       egress-authz check --explain [--admin-addr HOST:PORT] --host HOST ...   (server started with --enable-explain;
                          asks its admin endpoint why, from this host only)`;

export function formatCheckResult(r: CheckResult): string {
  const lines: string[] = [];
  lines.push(`decision: ${r.allowed ? 'ALLOW' : 'DENY'} (HTTP ${r.httpStatus}, grpc status ${r.grpcStatus})`);
  if (r.message) lines.push(`reason: ${r.message}`);
  for (const h of r.headers) lines.push(`${r.allowed ? 'set header' : 'header'}: ${h.key}: ${h.value}  [${h.appendAction}]`);
  for (const h of r.headersToRemove) lines.push(`remove header: ${h}`);
  for (const h of r.responseHeadersToAdd) lines.push(`response header: ${h.key}: ${h.value}`);
  for (const q of r.queryParametersToSet) lines.push(`set query: ${q.key}=${q.value}`);
  for (const q of r.queryParametersToRemove) lines.push(`remove query: ${q}`);
  if (!r.allowed) lines.push(`body: ${r.body}`);
  return lines.join('\n');
}

/** `check --explain`: the server's admin POST /debug/explain, rendered like `egress-authz explain`. */
async function explainOnServer(adminAddr: string, spec: RequestSpec, json: boolean, io: CliIo): Promise<number> {
  let res: Response;
  try {
    res = await fetch(`http://${adminAddr}${EXPLAIN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: spec }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    io.err(`explain failed: cannot reach the admin endpoint at ${adminAddr}: ${(err as Error).message}`);
    return 2;
  }
  const text = await res.text();
  if (res.status === 404 || res.status === 405) {
    io.err(`explain failed: ${adminAddr} has no ${EXPLAIN_PATH}: start the server with --enable-explain (EGRESS_AUTHZ_ENABLE_EXPLAIN=true)`);
    return 2;
  }
  if (!res.ok) {
    let msg = text.trim();
    try {
      msg = (JSON.parse(text) as { error?: string }).error ?? msg;
    } catch {
      // not JSON: show the text as is
    }
    io.err(`explain failed: HTTP ${res.status}: ${msg}`);
    return 2;
  }
  const e = JSON.parse(text) as Explanation;
  io.out(json ? JSON.stringify(e, null, 2) : renderExplanation(e));
  return e.decision.kind === 'allow' ? 0 : 1;
}

export async function runCheck(argv: readonly string[], io: CliIo = consoleIo): Promise<number> {
  const { flags, positional } = parseArgs(argv, ['H', 'header', 'context']);
  if (positional.length) throw new UsageError(CHECK_USAGE);
  const one = (k: string) => flags.get(k)?.[0];
  const addr = one('addr') ?? process.env.EGRESS_AUTHZ_ADDR ?? '127.0.0.1:50051';
  const host = one('host');
  if (!host) throw new UsageError(`--host is required\n${CHECK_USAGE}`);
  const headers: Record<string, string> = {};
  for (const h of [...(flags.get('H') ?? []), ...(flags.get('header') ?? [])]) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`-H expects 'name: value', got "${h}"`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const contextExtensions: Record<string, string> = {};
  for (const c of flags.get('context') ?? []) {
    const i = c.indexOf('=');
    if (i <= 0) throw new UsageError(`--context expects key=value, got "${c}"`);
    contextExtensions[c.slice(0, i)] = c.slice(i + 1);
  }
  const spec: RequestSpec = {
    host,
    method: one('method'),
    path: one('path'),
    headers,
    principal: one('principal'),
    contextExtensions,
    body: one('body'),
  };
  if (one('explain') === 'true') {
    const adminAddr = one('admin-addr') ?? process.env.EGRESS_AUTHZ_ADMIN_ADDR ?? '127.0.0.1:8080';
    return explainOnServer(adminAddr, spec, one('json') === 'true', io);
  }
  const client = new CheckClient(addr);
  try {
    const r = await client.check({
      ...spec,
      rawHeaders: one('raw-headers') === 'true',
    });
    io.out(one('json') === 'true' ? JSON.stringify(r.raw, null, 2) : formatCheckResult(r));
    return r.allowed ? 0 : 1;
  } catch (err) {
    io.err(`check failed: ${(err as Error).message}`);
    return 2;
  } finally {
    client.close();
  }
}
