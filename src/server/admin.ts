// Admin HTTP: /healthz (alive), /readyz (policies loaded and not shutting down), /metrics (Prometheus).
// In `serve --workers N` the primary process serves it, with every worker's metrics summed (see cluster.ts).
import http from 'node:http';
import type { AdminRoute } from './explain-endpoint.js';

export interface AdminState {
  ready(): boolean;
  readyDetail(): Record<string, unknown>;
}

/** Where /metrics comes from: a prom-client Registry, or the cluster aggregate in the primary. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminServer {
  readonly server: http.Server;
  readonly port: number;
  close(): Promise<void>;
}

export async function startAdminServer(
  listen: string,
  metrics: MetricsSource,
  state: AdminState,
  routes: readonly AdminRoute[] = [],
): Promise<AdminServer> {
  const { host, port } = splitHostPort(listen);
  const server = http.createServer((req, res) => {
    // Optional routes (e.g. POST /debug/explain) answer first; they return false for other paths.
    for (const route of routes) if (route(req, res)) return;
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const ok = state.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: ok, ...state.readyDetail() }) + '\n');
    } else if (url === '/metrics') {
      metrics.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${(err as Error).message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  // Probes and scrapes are short requests; don't let an idle keep-alive hold shutdown open.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    server,
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function splitHostPort(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`expected HOST:PORT, got "${s}"`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}
