// `egress-authz check`: send one Check to a running server and print what Envoy would do.
import { parseArgs, UsageError } from '../config.js';
import { CheckClient, type CheckResult } from './check-client.js';

export const CHECK_USAGE = `usage: egress-authz check --addr HOST:PORT --host HOST [--method GET] [--path /] [-H 'name: value']...
                          [--principal SPIFFE_ID] [--context policy=NAME]... [--raw-headers] [--json]`;

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

export async function runCheck(argv: readonly string[]): Promise<number> {
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
  const client = new CheckClient(addr);
  try {
    const r = await client.check({
      host,
      method: one('method'),
      path: one('path'),
      headers,
      principal: one('principal'),
      contextExtensions,
      rawHeaders: one('raw-headers') === 'true',
    });
    console.log(one('json') === 'true' ? JSON.stringify(r.raw, null, 2) : formatCheckResult(r));
    return r.allowed ? 0 : 1;
  } catch (err) {
    console.error(`check failed: ${(err as Error).message}`);
    return 2;
  } finally {
    client.close();
  }
}
