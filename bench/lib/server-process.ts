// A server under test in its own process (never the load generator's): spawn, wait until ready, read its
// peak memory, scrape its counters, stop it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { entryFile, type Runner } from './build.js';
import { REPO_ROOT } from './paths.js';
import { freeLoopbackPort } from './ports.js';

const READY_TIMEOUT_MS = 30_000;

export interface ServerProcess {
  readonly pid: number;
  /** host:port of the gRPC listener. */
  readonly grpcAddr: string;
  readonly adminUrl: string;
  /** Date.now() when the process was spawned. */
  readonly spawnedAt: number;
  /** Peak resident set (VmHWM) in bytes, summed over the process and its worker children. */
  peakRssBytes(): number;
  /** Current resident set (VmRSS) in bytes, summed the same way. */
  rssBytes(): number;
  /** CPU time (user + system) consumed so far, in seconds, summed the same way. */
  cpuSeconds(): number;
  /** Child pids (cluster workers), empty for a single process. */
  workerPids(): number[];
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Entry point without extension, relative to the repo root (bench/floor-server). */
  script: string;
  runner: Runner;
  args: readonly string[];
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Where the child's stdout (decision log lines) goes: a file path, or /dev/null. */
  stdoutFile?: string;
}

/** Spawns a server listening on fresh loopback ports (`--listen` and `--admin-listen` are appended). */
export async function spawnServer(opts: SpawnOptions): Promise<ServerProcess> {
  const grpcPort = await freeLoopbackPort();
  const adminPort = await freeLoopbackPort();
  const grpcAddr = `127.0.0.1:${grpcPort}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const out = fs.openSync(opts.stdoutFile ?? '/dev/null', 'w');
  const spawnedAt = Date.now();
  const child = spawn(
    process.execPath,
    [
      ...(opts.nodeFlags ?? []),
      ...(opts.runner === 'tsx' ? ['--import', 'tsx'] : []),
      entryFile(opts.script, opts.runner),
      ...opts.args,
      '--listen', grpcAddr,
      '--admin-listen', `127.0.0.1:${adminPort}`,
    ],
    { cwd: REPO_ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', out, 'pipe'] },
  );
  fs.closeSync(out);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-8000);
  });
  const pid = child.pid ?? -1;
  await waitReady(child, adminUrl, () => stderr);
  return {
    pid,
    grpcAddr,
    adminUrl,
    spawnedAt,
    peakRssBytes: () => sumStatus([pid, ...childPids(pid)], 'VmHWM'),
    rssBytes: () => sumStatus([pid, ...childPids(pid)], 'VmRSS'),
    cpuSeconds: () => [pid, ...childPids(pid)].reduce((sum, p) => sum + cpuSecondsOf(p), 0),
    workerPids: () => childPids(pid),
    stop: () => terminate(child),
  };
}

async function waitReady(child: ChildProcess, adminUrl: string, stderr: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited (${child.signalCode ?? child.exitCode}) before it was ready:\n${stderr()}`);
    }
    try {
      const res = await fetch(`${adminUrl}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready after ${READY_TIMEOUT_MS} ms:\n${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const escalate = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(escalate);
}

/** Node child processes (cluster workers) of any thread of `pid`; tsx's esbuild helper is not ours. */
function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const p of text.split(/\s+/).filter(Boolean).map(Number)) {
        if (readComm(p) !== 'esbuild') pids.push(p);
      }
    }
  } catch {
    // exited
  }
  return pids;
}

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Sums a `kB` field of /proc/<pid>/status over processes (missing ones count 0). */
function sumStatus(pids: readonly number[], field: 'VmHWM' | 'VmRSS'): number {
  let total = 0;
  for (const p of pids) {
    try {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited
    }
  }
  return total;
}

/** Linux reports utime and stime in clock ticks of 1/100 s (USER_HZ; `getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = 100;

function cpuSecondsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at state (field 3); utime, stime are 14, 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}
