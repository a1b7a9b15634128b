// Cold path: how long a Check takes when the identity is new (no cached TokenReview / JWT verdict, no Vault
// token, no cached secret), against fakes that add an artificial latency to every answer, and how it degrades
// when 1,000 distinct new identities arrive at once. Three processes: the fakes, egress-authz, and this client.
// `npm run bench -- cold [--latency-ms 5] [--burst 1000]`
// Each burst is reported with its allowed / 503 counts, the stage that answered each 503 (from the server's
// decision log), the backend calls it made, the connections egress-authz holds open to each backend
// afterwards and the CPU each process spent; a retry burst says whether it was fully allowed.
// EGRESS_BENCH_COLD_CPU_PROF=<dir> runs the servers under --cpu-prof and writes their profiles there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildServers } from './lib/build.js';
import { connectionsTo } from './lib/connections.js';
import { bucketPercentile, diffBuckets, readHistogram, type Buckets } from './lib/counters.js';
import { describeMachine, machineInfo } from './lib/machine.js';
import { writePolicyDir } from './lib/policy-check.js';
import { RawCheckClient, type RawAnswer } from './lib/raw-check-client.js';
import { startRemoteBackends, type BackendCalls, type RemoteBackends } from './lib/remote-backends.js';
import { spawnServer, type ServerProcess } from './lib/server-process.js';
import { median, percentile } from './lib/stats.js';
import { credentialInjectionPolicy, seed, workloadRequestFor, type IdentityKind } from './scenarios.js';

export interface ColdPathOptions {
  latencyMs: number;
  burst: number;
  sequential: number;
}

type Timed = RawAnswer;

const CLIENT_DEADLINE_MS = 10_000;
/** Time between the burst of new identities and its retry: the burst's backend calls finish meanwhile. */
const SETTLE_MS = 3_000;

function frameFor(token: string): Buffer {
  return RawCheckClient.frame(workloadRequestFor(token));
}

function timedCheck(client: RawCheckClient, token: string): Promise<Timed> {
  return client.check(frameFor(token), CLIENT_DEADLINE_MS);
}

/** Many Checks sent together: frames are built first, so the timing covers only the calls. */
function burstOf(client: RawCheckClient, tokens: readonly string[]): Promise<Timed[]> {
  const frames = tokens.map(frameFor);
  return Promise.all(frames.map((f) => client.check(f, CLIENT_DEADLINE_MS)));
}

function callsDelta(after: BackendCalls, before: BackendCalls): BackendCalls {
  const out = { ...after };
  for (const k of Object.keys(after) as (keyof BackendCalls)[]) out[k] = after[k] - before[k];
  return out;
}

function formatCalls(d: BackendCalls): string {
  return `TokenReview ${d.tokenReviews} (identity stage and Vault's own login checks), JWKS ${d.jwks}, Vault login ${d.login}, Vault read ${d.read}`;
}

function statusCounts(results: readonly Timed[]): string {
  const counts = new Map<string, number>();
  for (const r of results) {
    const k = r.error ?? (r.httpStatus === 200 ? 'allowed' : `${r.httpStatus}`);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
}

function latencySummary(results: readonly Timed[]): string {
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  return `p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms, max ${ms[ms.length - 1]!.toFixed(1)} ms`;
}

const CHECK_DURATION = 'egress_authz_check_duration_seconds';

/** Server-side time to decision (its own histogram), as bucket bounds: the client's view adds its own queueing. */
function serverSummary(buckets: Buckets): string {
  const fmt = (s: number) => (s === Infinity ? '> 200 ms' : `≤ ${s * 1000} ms`);
  return `server-side p50 ${fmt(bucketPercentile(buckets, 50))}, p99 ${fmt(bucketPercentile(buckets, 99))}`;
}

/** CPU seconds (user + system) a process has used, from /proc; 0 once it is gone. */
function cpuSecondsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14, 15) in USER_HZ ticks of 1/100 s.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The pid of this process's child running bench/backends-child.ts (the fakes), if it can be found. */
function backendsPid(): number | undefined {
  try {
    for (const task of fs.readdirSync(`/proc/${process.pid}/task`)) {
      const children = fs.readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      for (const child of children) {
        if (fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('backends-child')) return Number(child);
      }
    }
  } catch {
    // not Linux, or the process is gone
  }
  return undefined;
}

interface CpuSample {
  server: number;
  backends: number;
  client: number;
}

function sampleCpu(server: ServerProcess, fakesPid: number | undefined): CpuSample {
  const own = process.cpuUsage();
  return {
    server: server.cpuSeconds(),
    backends: fakesPid === undefined ? NaN : cpuSecondsOf(fakesPid),
    client: (own.user + own.system) / 1e6,
  };
}

interface LoggedDecision {
  decision: string;
  status: number;
  evaluator?: string;
  reason?: string;
  durationMs: number;
}

/** Reads the server's decision log (its stdout) incrementally: what each Check of a burst was answered, and why. */
class DecisionLogReader {
  private offset = 0;
  private partial = '';

  constructor(private readonly file: string) {}

  /** The decisions logged since the last call; waits (up to 5 s) until at least `expected` arrived. */
  async next(expected: number): Promise<LoggedDecision[]> {
    const out: LoggedDecision[] = [];
    const giveUp = Date.now() + 5_000;
    for (;;) {
      const text = this.readNew();
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as Partial<LoggedDecision> & { msg?: string };
        if (entry.msg !== 'decision' || entry.decision === undefined) continue;
        out.push({ decision: entry.decision, status: entry.status ?? 0, evaluator: entry.evaluator, reason: entry.reason, durationMs: entry.durationMs ?? 0 });
      }
      if (out.length >= expected || Date.now() > giveUp) return out;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private readNew(): string {
    const fd = fs.openSync(this.file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= this.offset) return '';
      const buf = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  }
}

interface BurstResult {
  readonly size: number;
  readonly results: readonly Timed[];
  readonly allowed: number;
  readonly unavailable: number;
  /** 503s by who answered them (decision log `evaluator`; `internal` = the Check deadline in the authorizer). */
  readonly unavailableBy: ReadonlyMap<string, number>;
  /** Deny reasons (status, evaluator, reason) with their counts, most frequent first. */
  readonly reasons: readonly [string, number][];
  /** Slowest server-side duration of a 503 (the deadline is 150 ms: later means a busy event loop). */
  readonly slowest503Ms: number;
  readonly serverBuckets: Buckets;
  /** Backend calls made by the time the last Check was answered. */
  readonly calls: BackendCalls;
  /** Backend calls made by the end of the settle period (the calls that outlived their Checks included). */
  readonly settledCalls: BackendCalls;
  readonly settleMs: number;
  /** Connections egress-authz held open right after the last Check was answered. */
  readonly connections: { kube: number | undefined; vault: number | undefined };
  /** CPU from the burst's start to the end of the settle period. */
  readonly cpu: CpuSample;
}

/** Who answered a 503, in words. */
function answeredBy(evaluator: string): string {
  if (evaluator === 'internal') return 'the Check deadline';
  if (evaluator === 'identity') return 'the identity stage';
  return evaluator;
}

/**
 * Sends `tokens` as one burst, then lets the backend calls the burst started finish for `settleMs` (they
 * outlive the Checks that gave up, to fill the caches) before taking the call and CPU figures.
 */
async function measureBurst(
  client: RawCheckClient,
  server: ServerProcess,
  backends: RemoteBackends,
  decisions: DecisionLogReader,
  tokens: readonly string[],
  settleMs: number,
): Promise<BurstResult> {
  await decisions.next(0);
  const fakesPid = backendsPid();
  const callsBefore = await backends.calls();
  const histBefore = await readHistogram(server.adminUrl, CHECK_DURATION);
  const cpuBefore = sampleCpu(server, fakesPid);
  const results = await burstOf(client, tokens);
  const calls = callsDelta(await backends.calls(), callsBefore);
  const connections = { kube: connectionsTo(server.pid, backends.kubeApiUrl), vault: connectionsTo(server.pid, backends.vaultUrl) };
  const serverBuckets = diffBuckets(await readHistogram(server.adminUrl, CHECK_DURATION), histBefore);
  const logged = await decisions.next(tokens.length);
  if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
  const cpuAfter = sampleCpu(server, fakesPid);
  const settledCalls = callsDelta(await backends.calls(), callsBefore);
  const unavailableBy = new Map<string, number>();
  const reasons = new Map<string, number>();
  let slowest503Ms = 0;
  for (const d of logged) {
    if (d.decision === 'allow') continue;
    const by = d.evaluator ?? '?';
    const key = `${d.status} from ${answeredBy(by)}: ${d.reason ?? ''}`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
    if (d.status === 503) {
      unavailableBy.set(by, (unavailableBy.get(by) ?? 0) + 1);
      slowest503Ms = Math.max(slowest503Ms, d.durationMs);
    }
  }
  return {
    size: tokens.length,
    results,
    allowed: results.filter((r) => r.httpStatus === 200).length,
    unavailable: results.filter((r) => r.httpStatus === 503).length,
    unavailableBy,
    reasons: [...reasons].sort((a, b) => b[1] - a[1]),
    slowest503Ms,
    serverBuckets,
    calls,
    settledCalls,
    settleMs,
    connections,
    cpu: {
      server: cpuAfter.server - cpuBefore.server,
      backends: cpuAfter.backends - cpuBefore.backends,
      client: cpuAfter.client - cpuBefore.client,
    },
  };
}

const fmtCount = (n: number | undefined): string => (n === undefined ? '?' : String(n));
const fmtCpu = (s: number): string => (Number.isFinite(s) ? s.toFixed(2) : '?');

function describeBurst(b: BurstResult): string {
  const by = [...b.unavailableBy].map(([e, n]) => `${n} from ${answeredBy(e)}`).join(', ');
  const reasons = b.reasons
    .slice(0, 3)
    .map(([reason, n]) => `${n}× "${reason}"`)
    .join('; ');
  const later = b.settleMs > 0 ? `; ${b.settleMs / 1000} s later (calls that outlived their Checks included): ${formatCalls(b.settledCalls)}` : '';
  return (
    `${statusCounts(b.results)}${b.unavailable > 0 ? ` (503s: ${by || 'not in the decision log'}; slowest 503 after ${b.slowest503Ms.toFixed(0)} ms server-side)` : ''}. ` +
    `Client-side ${latencySummary(b.results)}; ${serverSummary(b.serverBuckets)}. ` +
    `Backend calls by the last answer: ${formatCalls(b.calls)}${later}. ` +
    `Connections egress-authz held open after the last answer: ${fmtCount(b.connections.kube)} to the kube-apiserver, ${fmtCount(b.connections.vault)} to Vault. ` +
    `CPU from the burst's start${b.settleMs > 0 ? ' to the end of the settle period' : ''}: egress-authz ${fmtCpu(b.cpu.server)} s, fakes ${fmtCpu(b.cpu.backends)} s, load client ${fmtCpu(b.cpu.client)} s` +
    (reasons ? `. Deny reasons: ${reasons}` : '')
  );
}

const SUMMARY_HEADER = [
  '| Burst | Allowed | 503 from the identity stage | 503 at the Check deadline | Other | TokenReview | Vault login | Vault read | Connections to kube-apiserver / Vault after the burst | CPU s: egress-authz / fakes / client |',
  '|---|---|---|---|---|---|---|---|---|---|',
];

function summaryRow(label: string, b: BurstResult): string {
  const identity = b.unavailableBy.get('identity') ?? 0;
  const deadline = b.unavailableBy.get('internal') ?? 0;
  const other = b.size - b.allowed - identity - deadline;
  // "answered + later": calls made while the Checks were answered, and those that finished afterwards.
  const calls = (k: keyof BackendCalls) =>
    b.settledCalls[k] === b.calls[k] ? `${b.calls[k]}` : `${b.calls[k]} + ${b.settledCalls[k] - b.calls[k]} later`;
  return (
    `| ${label} | ${b.allowed} | ${identity} | ${deadline} | ${other} | ${calls('tokenReviews')} | ${calls('login')} | ${calls('read')} | ` +
    `${fmtCount(b.connections.kube)} / ${fmtCount(b.connections.vault)} | ${fmtCpu(b.cpu.server)} / ${fmtCpu(b.cpu.backends)} / ${fmtCpu(b.cpu.client)} |`
  );
}

let identitySerial = 0;
function newServiceAccounts(n: number, prefix: string): string[] {
  identitySerial++;
  return Array.from({ length: n }, (_, i) => `${prefix}-${identitySerial}-${i}`);
}

async function untilAllowed(client: RawCheckClient, token: string): Promise<void> {
  const giveUp = Date.now() + 15_000;
  for (;;) {
    const { httpStatus, error } = await timedCheck(client, token);
    if (httpStatus === 200) return;
    if (Date.now() > giveUp) throw new Error(`the server never allowed the warm-up identity: ${error ?? httpStatus}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Lines of the report, printed as they are produced. */
class Report {
  readonly lines: string[] = [];
  push(...lines: string[]): void {
    this.lines.push(...lines);
    for (const l of lines) console.log(l);
  }
}

async function measureIdentityKind(kind: IdentityKind, backends: RemoteBackends, opts: ColdPathOptions, out: Report): Promise<void> {
  const dir = writePolicyDir({
    'openai-external-httproute.yaml': seed('openai-external-httproute.yaml'),
    'openai-credential-injection.yaml': credentialInjectionPolicy(backends.vaultUrl, kind),
  });
  let server: ServerProcess | undefined;
  // Outside the policy directory, which the server reads.
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cold-decisions-'));
  const decisionLogFile = path.join(logDir, 'decisions.log');
  const profileDir = process.env['EGRESS_BENCH_COLD_CPU_PROF'];
  try {
    server = await spawnServer({
      script: 'bench/egress-authz-entry',
      runner: 'compiled',
      args: ['serve', '--policies', dir, '--watch', 'false', '--kubeconfig', backends.kubeconfigPath],
      stdoutFile: decisionLogFile,
      nodeFlags: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir)}`, `--cpu-prof-name=cold-${kind}.cpuprofile`] : [],
    });
    const decisions = new DecisionLogReader(decisionLogFile);
    const c = new RawCheckClient(server.grpcAddr);
    // Warm the process (JIT, connections to the fakes) with one identity, without latency.
    await backends.setLatencyMs(0);
    const [warmToken] = await backends.tokens(newServiceAccounts(1, 'warm'));
    await untilAllowed(c, warmToken!);
    for (let i = 0; i < 200; i++) await timedCheck(c, warmToken!);
    await backends.setLatencyMs(opts.latencyMs);
    const label = kind === 'tokenreview' ? 'TokenReview + Vault login + KV read' : 'JWT (Kubernetes JWKS, local) + Vault login + KV read';
    out.push(`### ${label}`, '');

    // New identities one at a time.
    const seqTokens = await backends.tokens(newServiceAccounts(opts.sequential, 'seq'));
    const before = await backends.calls();
    const cold: Timed[] = [];
    const warm: Timed[] = [];
    for (const t of seqTokens) {
      cold.push(await timedCheck(c, t));
      warm.push(await timedCheck(c, t));
    }
    const after = await backends.calls();
    out.push(
      `- First Check of a new identity, one at a time (${opts.sequential} identities): median ${median(cold.map((r) => r.ms)).toFixed(1)} ms, ` +
        `max ${Math.max(...cold.map((r) => r.ms)).toFixed(1)} ms; ${statusCounts(cold)}. Backend calls: ${formatCalls(callsDelta(after, before))}.`,
      `- The same identity's second Check (warm): median ${median(warm.map((r) => r.ms)).toFixed(2)} ms.`,
    );

    // One new identity, many Checks at once: coalescing.
    const [oneToken] = await backends.tokens(newServiceAccounts(1, 'coalesce'));
    const one = await measureBurst(c, server, backends, decisions, Array.from({ length: opts.burst }, () => oneToken!), 0);
    out.push(`- ${opts.burst} Checks of ONE new identity at once: ${describeBurst(one)}.`);

    // Many new identities at once; then the same identities again, once the backend calls started by the
    // burst have finished (they outlive the Checks that gave up, to fill the caches).
    const burstTokens = await backends.tokens(newServiceAccounts(opts.burst, 'burst'));
    const rssBefore = server.rssBytes();
    const first = await measureBurst(c, server, backends, decisions, burstTokens, SETTLE_MS);
    out.push(
      `- ${opts.burst} distinct new identities at once: ${describeBurst(first)}. ` +
        `Server RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(server.rssBytes() / 2 ** 20).toFixed(0)} MiB.`,
    );
    const again = await measureBurst(c, server, backends, decisions, burstTokens, 0);
    const fully = again.allowed === opts.burst ? 'yes' : `no (${opts.burst - again.allowed} of ${opts.burst} not allowed)`;
    out.push(`- The same ${opts.burst} identities again at once, ${SETTLE_MS / 1000} s later — fully allowed: ${fully}. ${describeBurst(again)}.`, '');
    out.push(
      ...SUMMARY_HEADER,
      summaryRow(`${opts.burst} × one new identity`, one),
      summaryRow(`${opts.burst} distinct new identities`, first),
      summaryRow(`the same again, ${SETTLE_MS / 1000} s later — fully allowed: ${again.allowed === opts.burst ? 'yes' : 'no'}`, again),
      '',
    );
    c.close();
  } finally {
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

export async function runColdPathBenchmark(opts: ColdPathOptions): Promise<string> {
  const log = (s: string) => console.log(s);
  await buildServers(log);
  const backends = await startRemoteBackends();
  const out = new Report();
  out.push(
    `## Cold path — ${describeMachine(machineInfo())}`,
    '',
    `Every kube-apiserver and Vault answer delayed by ${opts.latencyMs} ms (a Vault login also waits for Vault's own TokenReview). ` +
      `Check deadline: 150 ms (the serve default). Fakes, egress-authz and this client each run in their own process; client-side latencies are measured by a minimal HTTP/2 gRPC client over one connection (bench/lib/raw-check-client.ts), server-side ones are the server's own check-duration histogram (bucket bounds).`,
    '',
    `Per burst: allowed and 503 counts, with who answered each 503 (from the server's decision log: "the identity stage" = its backend did not answer in time; ` +
      `"the Check deadline" = the authorizer answered at 150 ms while a stage was still waiting); backend calls made by the last answer, and "+ N later" made ` +
      `after it by calls that outlived their Checks (they fill the caches); connections egress-authz held open right after the burst; CPU seconds of each process ` +
      `from the burst's start (for the burst of distinct identities: to the end of the ${SETTLE_MS / 1000} s settle period before the retry).`,
    '',
  );
  try {
    for (const kind of ['tokenreview', 'jwt'] as const) await measureIdentityKind(kind, backends, opts, out);
  } finally {
    await backends.close();
  }
  return out.lines.join('\n');
}
