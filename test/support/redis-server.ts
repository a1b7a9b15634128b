// Starts a real Debian `redis-server` on 127.0.0.1 for tests: free port, no persistence, own temp dir.
// stop()/start() simulate an outage and a recovery on the SAME port; pause()/resume() (SIGSTOP/SIGCONT)
// simulate a Redis that accepts connections but does not answer. Several test files may each run their own.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REDIS_SERVER_BINARY = '/usr/bin/redis-server';
const READY_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;

export interface RedisServerHandle {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, waits for exit); the port stays reserved for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted) and waits until it answers. */
  start(): Promise<void>;
  /** Freezes the process: connections stay open but nothing is answered. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stops the server and removes its temp dir. */
  close(): Promise<void>;
}

const liveProcesses = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills servers left running if the test process exits without calling close(). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of liveProcesses) child.kill('SIGKILL');
  });
}

export async function startRedisServer(): Promise<RedisServerHandle> {
  if (!existsSync(REDIS_SERVER_BINARY)) {
    throw new Error(`${REDIS_SERVER_BINARY} not found: install it with \`apt-get install -y redis-server\``);
  }
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), 'egress-authz-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;

  // Another process may take the free port between our probe and redis binding it: retry with a new one.
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS && child === undefined; attempt++) {
    port = await freeLoopbackPort();
    try {
      child = await launch(port, dir);
    } catch (error) {
      lastError = error;
    }
  }
  if (child === undefined) {
    await rm(dir, { recursive: true, force: true });
    throw lastError instanceof Error ? lastError : new Error('redis-server did not start');
  }

  let paused = false;
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined) return;
    if (paused) {
      running.kill('SIGCONT');
      paused = false;
    }
    await terminate(running);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    async start() {
      if (child !== undefined) return;
      child = await launch(port, dir);
    },
    async pause() {
      if (child === undefined || paused) return;
      child.kill('SIGSTOP');
      paused = true;
    },
    async resume() {
      if (child === undefined || !paused) return;
      child.kill('SIGCONT');
      paused = false;
    },
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function launch(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    REDIS_SERVER_BINARY,
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--databases', '1',
      '--loglevel', 'warning',
      '--logfile', '',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  liveProcesses.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      liveProcesses.delete(child);
      reject(new Error(`redis-server on port ${port} exited (${signal ?? code}) before answering:\n${output}`));
    });
    child.once('error', (error) => reject(error));
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([waitUntilServing(port, child.pid ?? -1), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return child;
}

async function waitUntilServing(port: number, pid: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (await answersAs(port, pid)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer in ${READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Asks INFO over a raw socket (no dependency on the client under test) and checks the answer comes from
 * OUR process: a parallel test's redis that won a race for the port must not pass for ours.
 */
function answersAs(port: number, pid: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.startsWith('-')) return finish(false);
      const match = /process_id:(\d+)\r\n/.exec(reply);
      if (match !== null) finish(Number(match[1]) === pid);
    });
  });
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const escalate = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(escalate);
  liveProcesses.delete(child);
}
