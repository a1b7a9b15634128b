// Admin `POST /debug/explain` (off unless --enable-explain): explains one request described as JSON
// ({host, method, path, headers, principal, contextExtensions, body}) against the live policies, with the
// real backends. It answers loopback clients only (kubectl port-forward, an exec'd curl): the output names
// policies and the values expressions saw, which is more than the network should learn.
import type http from 'node:http';
import type { Logger } from 'pino';
import type { Authorizer } from '../pipeline/authorizer.js';
import type { PolicySet } from '../policy/policy-set.js';
import { explainRequest } from '../policy/testing/explain.js';
import { RequestSpecError, requestSpecFromJson, toRequestViewFromSpec } from '../policy/testing/request.js';

export const EXPLAIN_PATH = '/debug/explain';
const MAX_BODY_BYTES = 64 * 1024;

/** Handles a request if it is for this route; returns false to let the admin server go on. */
export type AdminRoute = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

export interface ExplainEndpointDeps {
  readonly authorizer: Authorizer;
  readonly policySet: () => PolicySet | undefined;
  readonly logger: Logger;
}

/**
 * Exactly the loopback addresses a local client uses. Not all of 127/8: Istio's sidecar delivers inbound
 * traffic from 127.0.0.6, which would make every remote caller look local.
 */
export function isLoopbackPeer(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** A proxy on the same host (a sidecar) forwards remote callers from a loopback address: refuse those. */
function isForwarded(req: http.IncomingMessage): boolean {
  return Object.keys(req.headers).some((h) => h === 'forwarded' || h === 'x-forwarded-for' || h.startsWith('x-envoy-'));
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body) + '\n');
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestSpecError(`request description larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handle(deps: ExplainEndpointDeps, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const set = deps.policySet();
  if (!set) return reply(res, 503, { error: 'policies are not loaded yet' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readBody(req));
  } catch (err) {
    return reply(res, 400, { error: err instanceof RequestSpecError ? err.message : 'body must be a JSON request description' });
  }
  const wrapped = parsed as { request?: unknown } | null;
  const described = wrapped && typeof wrapped === 'object' && 'request' in wrapped ? wrapped.request : parsed;
  if (wrapped && typeof wrapped === 'object' && ('identity' in wrapped || 'metadata' in wrapped)) {
    return reply(res, 400, { error: 'stand-ins (identity, metadata) are for policy tests; the server explains with its real backends' });
  }
  let view;
  try {
    view = toRequestViewFromSpec(requestSpecFromJson(described));
  } catch (err) {
    return reply(res, 400, { error: err instanceof RequestSpecError ? err.message : 'invalid request description' });
  }
  const explanation = await explainRequest(deps.authorizer, set, view);
  deps.logger.info({ host: view.host, decision: explanation.decision.kind }, 'explain request served');
  reply(res, 200, explanation);
}

export function explainRoute(deps: ExplainEndpointDeps): AdminRoute {
  return (req, res) => {
    if ((req.url ?? '/').split('?')[0] !== EXPLAIN_PATH) return false;
    if (!isLoopbackPeer(req.socket.remoteAddress) || isForwarded(req)) {
      reply(res, 403, { error: 'explain answers only to clients on this host (loopback, not forwarded)' });
      return true;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return true;
    }
    handle(deps, req, res).catch((err: unknown) => {
      deps.logger.error({ err: { message: (err as Error).message } }, 'explain failed');
      if (!res.headersSent) reply(res, 500, { error: 'explain failed' });
    });
    return true;
  };
}
