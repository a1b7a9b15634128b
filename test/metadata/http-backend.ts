// A tiny scriptable HTTP backend on 127.0.0.1 for metadata tests: records every request and answers with
// whatever the test's handler returns (or holds the request open).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export interface Reply {
  status?: number;
  contentType?: string;
  body?: string;
  /** Never answer (until the backend closes). */
  hang?: boolean;
  /** Answer after this promise settles. */
  after?: Promise<unknown>;
}

export interface HttpBackend {
  readonly url: string;
  readonly requests: RecordedRequest[];
  handler: (req: RecordedRequest) => Reply;
  close(): Promise<void>;
}

export async function startHttpBackend(handler: (req: RecordedRequest) => Reply = () => ({ body: '{}' })): Promise<HttpBackend> {
  const sockets = new Set<Socket>();
  const backend = {
    url: '',
    requests: [] as RecordedRequest[],
    handler,
    close: async () => undefined as void,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      backend.requests.push(rec);
      const reply = backend.handler(rec);
      if (reply.hang) return;
      const send = () => {
        res.writeHead(reply.status ?? 200, { 'content-type': reply.contentType ?? 'application/json' });
        res.end(reply.body ?? '{}');
      };
      if (reply.after) void reply.after.then(send, send);
      else send();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  backend.url = `http://127.0.0.1:${address.port}`;
  backend.close = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return backend;
}

/** A URL on which nothing listens (a port we bound and released). */
export async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}
