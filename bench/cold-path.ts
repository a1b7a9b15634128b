// Cold path: how long a Check takes when the identity is new (no cached TokenReview / JWT verdict, no Vault
// token, no cached secret), against fakes that add an artificial latency to every answer, and how it degrades
// when 1,000 distinct new identities arrive at once. Three processes: the fakes, egress-authz, and this client.
// `npm run bench -- cold [--latency-ms 5] [--burst 1000]`
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { buildServers } from './lib/build.js';
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

function callsDelta(after: BackendCalls, before: BackendCalls): string {
  const d = (k: keyof BackendCalls) => after[k] - before[k];
  return `TokenReview ${d('tokenReviews')}, JWKS ${d('jwks')}, Vault login ${d('login')}, Vault read ${d('read')}`;
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

/** Established TCP connections of `pid` to a port: how many sockets its backend client opened. */
function connectionsTo(pid: number, url: string): number | undefined {
  try {
    const port = new URL(url).port;
    const out = execFileSync('ss', ['-tnpH', 'state', 'established', 'dport', `= :${port}`], { encoding: 'utf8' });
    return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
  } catch {
    return undefined;
  }
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
  try {
    server = await spawnServer({
      script: 'bench/egress-authz-entry',
      runner: 'compiled',
      args: ['serve', '--policies', dir, '--watch', 'false', '--kubeconfig', backends.kubeconfigPath],
    });
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
        `max ${Math.max(...cold.map((r) => r.ms)).toFixed(1)} ms; ${statusCounts(cold)}. Backend calls: ${callsDelta(after, before)}.`,
      `- The same identity's second Check (warm): median ${median(warm.map((r) => r.ms)).toFixed(2)} ms.`,
    );

    // One new identity, many Checks at once: coalescing.
    const [oneToken] = await backends.tokens(newServiceAccounts(1, 'coalesce'));
    const beforeOne = await backends.calls();
    const histOne = await readHistogram(server.adminUrl, CHECK_DURATION);
    const same = await burstOf(c, Array.from({ length: opts.burst }, () => oneToken!));
    const afterOne = await backends.calls();
    const serverOne = diffBuckets(await readHistogram(server.adminUrl, CHECK_DURATION), histOne);
    out.push(
      `- ${opts.burst} Checks of ONE new identity at once: client-side ${latencySummary(same)}; ${serverSummary(serverOne)}; ${statusCounts(same)}. ` +
        `Backend calls: ${callsDelta(afterOne, beforeOne)}.`,
    );

    // Many new identities at once.
    const burstTokens = await backends.tokens(newServiceAccounts(opts.burst, 'burst'));
    const beforeBurst = await backends.calls();
    const histBurst = await readHistogram(server.adminUrl, CHECK_DURATION);
    const rssBefore = server.rssBytes();
    const burst = await burstOf(c, burstTokens);
    const afterBurst = await backends.calls();
    const serverBurst = diffBuckets(await readHistogram(server.adminUrl, CHECK_DURATION), histBurst);
    out.push(
      `- ${opts.burst} distinct new identities at once: client-side ${latencySummary(burst)}; ${serverSummary(serverBurst)}; ${statusCounts(burst)}. ` +
        `Backend calls: ${callsDelta(afterBurst, beforeBurst)}. Connections egress-authz holds open afterwards: ` +
        `${connectionsTo(server.pid, backends.kubeApiUrl) ?? '?'} to the kube-apiserver, ${connectionsTo(server.pid, backends.vaultUrl) ?? '?'} to Vault. ` +
        `Server RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(server.rssBytes() / 2 ** 20).toFixed(0)} MiB.`,
    );
    // The same identities again, once the backend calls started by the burst have finished (they outlive
    // the Checks that gave up, to fill the caches).
    await new Promise((r) => setTimeout(r, 3_000));
    const beforeAgain = await backends.calls();
    const histAgain = await readHistogram(server.adminUrl, CHECK_DURATION);
    const again = await burstOf(c, burstTokens);
    const serverAgain = diffBuckets(await readHistogram(server.adminUrl, CHECK_DURATION), histAgain);
    out.push(
      `- The same ${opts.burst} identities again at once, 3 s later: client-side ${latencySummary(again)}; ${serverSummary(serverAgain)}; ${statusCounts(again)}. ` +
        `Backend calls: ${callsDelta(await backends.calls(), beforeAgain)}.`,
      '',
    );
    c.close();
  } finally {
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
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
  );
  try {
    for (const kind of ['tokenreview', 'jwt'] as const) await measureIdentityKind(kind, backends, opts, out);
  } finally {
    await backends.close();
  }
  return out.lines.join('\n');
}
