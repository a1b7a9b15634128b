// Admin HTTP: /healthz (alive), /readyz (policies loaded and not shutting down), /metrics (Prometheus).
import http from 'node:http';
import type { Metrics } from '../observability/metrics.js';

export interface AdminState {
  ready(): boolean;
  readyDetail(): Record<string, unknown>;
}

export async function startAdminServer(listen: string, metrics: Metrics, state: AdminState): Promise<{ server: http.Server; port: number; close(): Promise<void> }> {
  const { host, port } = splitHostPort(listen);
  const server = http.createServer((req, res) => {
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
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    server,
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export function splitHostPort(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`expected HOST:PORT, got "${s}"`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}
