// Memory with many cached identities: RSS of egress-authz after N distinct workload identities (each a new
// ServiceAccount token, so a TokenReview and a cache entry each), and whether the cache still holds the
// oldest ones. `npm run bench -- memory [--identities 100000]`
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { buildCheckRequest } from '../src/cli/check-client.js';
import { deserializeCheckRequest, serializeCheckRequest } from '../src/envoy/codec.js';
import { toRequestView } from '../src/envoy/request.js';
import { silentLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { Authorizer } from '../src/pipeline/authorizer.js';
import { Services } from '../src/pipeline/services.js';
import { loadPolicyDirectory } from '../src/policy/load.js';
import { buildServers } from './lib/build.js';
import { connectionsTo } from './lib/connections.js';
import { describeMachine, machineInfo } from './lib/machine.js';
import { writePolicyDir } from './lib/policy-check.js';
import { RawCheckClient } from './lib/raw-check-client.js';
import { startRemoteBackends, type RemoteBackends } from './lib/remote-backends.js';
import { spawnServer, type ServerProcess } from './lib/server-process.js';
import { seed, workloadRequestFor } from './scenarios.js';

const BATCH = 2_000;
/** Distinct identities before the per-identity baseline: more than the TokenReview cache's hot level holds. */
const WARM_IDENTITIES = 5_000;
const IN_FLIGHT = 64;
const MiB = 2 ** 20;

/** Sends one allowed Check per token, IN_FLIGHT at a time; returns how many were not allowed. */
async function checkAll(client: RawCheckClient, tokens: readonly string[]): Promise<number> {
  let next = 0;
  let refused = 0;
  const lane = async () => {
    while (next < tokens.length) {
      const t = tokens[next++]!;
      const r = await client.check(RawCheckClient.frame(workloadRequestFor(t)));
      if (r.httpStatus !== 200) refused++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return refused;
}

async function sendIdentities(
  backends: RemoteBackends,
  client: RawCheckClient,
  count: number,
  prefix: string,
  keep: { first: string[]; last: string[] },
  onProgress: (sent: number) => Promise<void>,
): Promise<number> {
  let refused = 0;
  for (let sent = 0; sent < count; sent += BATCH) {
    const n = Math.min(BATCH, count - sent);
    const names = Array.from({ length: n }, (_, i) => `${prefix}-${sent + i}`);
    const tokens = await backends.tokens(names, 'ES256');
    if (keep.first.length < 1_000) keep.first.push(...tokens.slice(0, 1_000 - keep.first.length));
    keep.last = [...keep.last, ...tokens].slice(-1_000);
    refused += await checkAll(client, tokens);
    await onProgress(sent + n);
  }
  return refused;
}

/**
 * Lets the per-review timeouts (AbortSignal.timeout, 2 s) of finished TokenReviews expire: until then they
 * hold their signal and timer, which are not part of what a cached identity costs.
 */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 2_500));
}

/** A `gc()` even without --expose-gc (the flag can be set at run time; the function comes from a fresh context). */
function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * Heap bytes per cached identity, measured in this process with the server's own code (Services, the
 * policy, the TokenReview cache) against the fakes: heap after a full GC, before and after `count` distinct
 * identities. Tokens are created before the baseline, so they are not counted; neither is the compiled code of
 * the new-identity path (warmed up with other identities first). The warm-up identities also fill the cache's
 * hot level (4,096 built identities), so the figure is what each further identity costs: its packed form.
 */
async function bytesPerCachedIdentity(backends: RemoteBackends, dir: string, count: number): Promise<{ perIdentity: number; refused: number }> {
  const gc = gcFunction();
  const services = new Services(
    { checkDeadlineMs: 2_000, defaultDecision: 'deny', kubeconfig: backends.kubeconfigPath },
    silentLogger,
    new Metrics(),
  );
  try {
    const loaded = loadPolicyDirectory(dir, services);
    if (!loaded.ok) throw new Error(`policy does not load: ${loaded.diagnostics[0]?.message}`);
    await services.warm();
    const authorizer = new Authorizer(services, () => loaded.set);
    const viewOf = (token: string) => toRequestView(deserializeCheckRequest(serializeCheckRequest(buildCheckRequest(workloadRequestFor(token)))));
    const tokensFor = async (prefix: string, n: number): Promise<string[]> => {
      const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
      const tokens: string[] = [];
      for (let i = 0; i < names.length; i += BATCH) tokens.push(...(await backends.tokens(names.slice(i, i + BATCH), 'ES256')));
      return tokens;
    };
    let refused = 0;
    const checkEach = async (tokens: readonly string[]) => {
      let next = 0;
      const lane = async () => {
        while (next < tokens.length) {
          const outcome = await authorizer.check(viewOf(tokens[next++]!));
          if (outcome.decision.kind !== 'allow') refused++;
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    };
    // Warm-up with distinct identities, so the code on the new-identity path is compiled before the baseline
    // (its machine code would otherwise be counted as cache).
    await checkEach(await tokensFor('per-identity-warm', WARM_IDENTITIES));
    refused = 0;
    const tokens = await tokensFor('per-identity', count);
    await settle();
    gc();
    const before = process.memoryUsage().heapUsed;
    await checkEach(tokens);
    await settle();
    gc();
    return { perIdentity: (process.memoryUsage().heapUsed - before) / count, refused };
  } finally {
    await services.close();
  }
}

/** Where a process's RSS is: anonymous memory (heaps, malloc) vs file-backed pages (the node binary, libraries). */
function rssParts(pid: number): string {
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
    const anon = kib('Anonymous');
    const rss = kib('Rss');
    if (!Number.isFinite(anon) || !Number.isFinite(rss)) return '';
    return `; ${mib(anon)} anonymous, ${mib(rss - anon)} file-backed`;
  } catch {
    return '';
  }
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

/** The server's own V8 heap figures (its /metrics): how much of the RSS is JavaScript heap (used includes garbage not yet collected). */
async function heapOf(server: ServerProcess): Promise<string> {
  try {
    const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const used = value('nodejs_heap_size_used_bytes');
    const total = value('nodejs_heap_size_total_bytes');
    const external = value('nodejs_external_memory_bytes');
    if (!Number.isFinite(used)) return '';
    return ` (V8 heap ${mib(used)} used of ${mib(total)}, external ${mib(external)})`;
  } catch {
    return '';
  }
}

export async function runMemoryBenchmark(identities: number, nodeFlags: readonly string[] = []): Promise<string> {
  const log = (s: string) => console.log(s);
  await buildServers(log);
  const backends = await startRemoteBackends();
  const dir = writePolicyDir({
    'openai-external-httproute.yaml': seed('openai-external-httproute.yaml'),
    'openai-access-control.yaml': seed('openai-access-control.yaml'),
  });
  let server: ServerProcess | undefined;
  const lines: string[] = [];
  const report = (s: string) => {
    lines.push(s);
    log(s);
  };
  try {
    server = await spawnServer({
      script: 'bench/egress-authz-entry',
      runner: 'compiled',
      args: ['serve', '--policies', dir, '--watch', 'false', '--kubeconfig', backends.kubeconfigPath],
      nodeFlags,
    });
    const client = new RawCheckClient(server.grpcAddr);
    report(`## Memory — ${describeMachine(machineInfo())}`);
    report('');
    report(`Policy: the seed's TokenReview access control. Each identity: a new ServiceAccount (ES256 token), one Check.`);
    if (nodeFlags.length) report(`Server node flags: \`${nodeFlags.join(' ')}\`.`);
    report('');
    // Warm-up: one identity, until the Kubernetes client is ready, then a few thousand Checks for the JIT.
    const [warm] = await backends.tokens(['memory-warm'], 'ES256');
    const giveUp = Date.now() + 15_000;
    const warmFrame = RawCheckClient.frame(workloadRequestFor(warm!));
    while ((await client.check(warmFrame)).httpStatus !== 200) {
      if (Date.now() > giveUp) throw new Error('the server never allowed the warm-up identity');
      await new Promise((r) => setTimeout(r, 200));
    }
    await checkAll(client, Array.from({ length: 5_000 }, () => warm!));
    const baseline = server.rssBytes();
    report(`- Baseline after warm-up (1 identity): RSS ${mib(baseline)}${await heapOf(server)}${rssParts(server.pid)}.`);
    const keep = { first: [] as string[], last: [] as string[] };
    const checkpoints = new Set([10_000, 50_000, identities]);
    const started = Date.now();
    const refused = await sendIdentities(backends, client, identities, 'memory', keep, async (sent) => {
      if (!checkpoints.has(sent)) return;
      report(
        `- After ${sent.toLocaleString('en-US')} distinct identities: RSS ${mib(server!.rssBytes())}, peak ${mib(server!.peakRssBytes())}` +
          `${await heapOf(server!)} (${((Date.now() - started) / 1000).toFixed(0)} s).`,
      );
    });
    if (refused) report(`- ${refused} of those Checks were not allowed (expected 0).`);
    const calls0 = await backends.calls();
    await checkAll(client, keep.last);
    const calls1 = await backends.calls();
    await checkAll(client, keep.first);
    const calls2 = await backends.calls();
    report(
      `- Still cached? Re-checking the last 1,000 identities made ${calls1.tokenReviews - calls0.tokenReviews} TokenReviews, ` +
        `the first 1,000 made ${calls2.tokenReviews - calls1.tokenReviews} (each TokenReview is an entry the bounded cache had evicted).`,
    );
    report(`- Final RSS ${mib(server.rssBytes())}, peak ${mib(server.peakRssBytes())}${await heapOf(server)}${rssParts(server.pid)}.`);
    report(`- Connections to the kube-apiserver held open: ${connectionsTo(server.pid, backends.kubeApiUrl) ?? '?'}.`);
    client.close();
    // The cache's share, measured in-process after full GCs (RSS above also holds garbage V8 has not returned).
    const sample = 10_000;
    const { perIdentity, refused: sampleRefused } = await bytesPerCachedIdentity(backends, dir, sample);
    report(
      `- Heap per cached identity (in-process, ${sample.toLocaleString('en-US')} identities after ${WARM_IDENTITIES.toLocaleString('en-US')}, after full GCs): ${(perIdentity / 1024).toFixed(2)} KiB` +
        `${sampleRefused ? ` (${sampleRefused} not allowed)` : ''}; 100,000 cached identities would hold ${mib(perIdentity * 100_000)} of heap.`,
    );
  } finally {
    await server?.stop();
    await backends.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return lines.join('\n');
}
