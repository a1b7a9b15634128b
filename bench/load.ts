// The load table: the floor and every scenario, driven by h2load at each concurrency, verified against the
// server's own decision counters, medians of N runs. The floor server stays up for the whole benchmark and
// every scenario run is paired with a floor run just before it: the ratios are medians of those pairs, so a
// machine whose speed drifts (a shared VM) moves both sides of each ratio alike.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CheckClient, buildCheckRequest, interpretCheckResponse } from '../src/cli/check-client.js';
import { serializeCheckRequest } from '../src/envoy/codec.js';
import { startBackends, type Backends } from './lib/backends.js';
import { buildServers, type Runner } from './lib/build.js';
import { diffCounts, readDecisionCounts } from './lib/counters.js';
import { H2LOAD, grpcFrame, runH2load, type LoadResult, type LoadShape } from './lib/h2load.js';
import { describeMachine, machineInfo } from './lib/machine.js';
import { policyLoadProblem, writePolicyDir } from './lib/policy-check.js';
import { spawnServer, type ServerProcess } from './lib/server-process.js';
import { median } from './lib/stats.js';
import { BENCH_SERVICE_ACCOUNT, SCENARIOS, workloadRequestFor, type Scenario, type ScenarioEnv } from './scenarios.js';

export interface LoadOptions {
  runs: number;
  /** Target length of one measured run. */
  seconds: number;
  concurrencies: readonly number[];
  /** Scenario ids to run (the floor always runs). Empty: all. */
  only: readonly string[];
  /** Scenario id whose server runs with --cpu-prof; the profile lands in this directory. */
  cpuProfile?: { scenario: string; dir: string };
  resultsDir: string;
  runner: Runner;
  /** Extra `serve` flags for every egress-authz server (experiments, e.g. --decision-log off). */
  extraServeArgs: readonly string[];
  /** Extra node flags for every egress-authz server (experiments, e.g. --max-semi-space-size=32). */
  extraNodeFlags: readonly string[];
}

export interface Row {
  title: string;
  concurrency: number;
  rps?: number;
  meanMs?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** rps / the floor's rps: the median over runs each paired with a floor run just before it. */
  ratio?: number;
  /** p99 / the floor's p99, paired the same way. */
  p99Ratio?: number;
  peakRssMiB?: number;
  /** Server CPU time per Check (user + system), µs: what a Check costs, whatever else runs on the machine. */
  cpuUsPerCheck?: number;
  checks?: number;
  note?: string;
}

const FLOOR_TITLE = 'Floor: no-op grpc-js Check server';
const TRANSPORT_FLOOR_TITLE = "No-op Check on egress-authz's transport (node:http2)";
const WARM_UP_REQUESTS = 3_000;
const MIN_REQUESTS = 2_000;
const SAMPLE_RETRY_MS = 15_000;

/** Envoy opens one HTTP/2 connection per worker thread to an ext_authz cluster; we model a 2-thread Envoy. */
export function shapeFor(concurrency: number): LoadShape {
  if (concurrency <= 1) return { connections: 1, streamsPerConnection: 1 };
  return { connections: 2, streamsPerConnection: Math.ceil(concurrency / 2) };
}

interface Target {
  title: string;
  start(): Promise<ServerProcess>;
  /** The protobuf CheckRequest h2load repeats. */
  message: Buffer;
  verify(result: ReturnType<typeof interpretCheckResponse>): string | undefined;
  workers: number;
  /** Set by the harness: ms from spawning the server to its first load (profiles skip the start-up). */
  loadStartedMs?: number;
}

class Verification extends Error {}

/** The floor server, kept running while the scenarios are measured, and the request it is driven with. */
interface PairedFloor {
  server: ServerProcess;
  bodyFile: string;
}

function writeBody(message: Buffer): string {
  const bodyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-bench-body-')), 'check.grpc');
  fs.writeFileSync(bodyFile, grpcFrame(message));
  return bodyFile;
}

/**
 * Measures one target at every concurrency. With `floor`, each run is preceded by a floor run of the same
 * shape and the row's ratios are medians over those pairs. `keep` leaves the server running for the caller.
 */
async function measureTarget(
  target: Target,
  opts: LoadOptions,
  log: (s: string) => void,
  floor?: PairedFloor,
  keep?: (server: ServerProcess, bodyFile: string) => void,
): Promise<Row[]> {
  const bodyFile = writeBody(target.message);
  const server = await target.start();
  const rows: Row[] = [];
  let kept = false;
  try {
    if (target.workers > 1 && server.workerPids().length < target.workers) {
      return [{ title: target.title, concurrency: 0, note: `skipped: serve --workers ${target.workers} started ${server.workerPids().length} worker processes` }];
    }
    // A sample answer through a real gRPC client: the expected allow (and injected header), which also warms caches.
    const problem = await sampleCheck(server, target);
    if (problem) return [{ title: target.title, concurrency: 0, note: `failed: ${problem}` }];
    if (target.workers > 1) {
      const warmed = await warmEveryWorker(server, bodyFile, target.workers);
      if (warmed) return [{ title: target.title, concurrency: 0, note: `failed: ${warmed}` }];
    }
    target.loadStartedMs = Date.now() - server.spawnedAt;
    for (const concurrency of opts.concurrencies) {
      const shape = shapeFor(concurrency);
      const warm = await verifiedRun(server, bodyFile, shape, WARM_UP_REQUESTS);
      const requests = Math.max(MIN_REQUESTS, Math.round(warm.rps * opts.seconds));
      const floorRequests = floor
        ? Math.max(MIN_REQUESTS, Math.round((await verifiedRun(floor.server, floor.bodyFile, shape, WARM_UP_REQUESTS)).rps * opts.seconds))
        : 0;
      const results: LoadResult[] = [];
      const cpuPerCheck: number[] = [];
      const ratios: number[] = [];
      const p99Ratios: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        const floorRun = floor ? await verifiedRun(floor.server, floor.bodyFile, shape, floorRequests) : undefined;
        const cpu0 = server.cpuSeconds();
        const result = await verifiedRun(server, bodyFile, shape, requests);
        cpuPerCheck.push(((server.cpuSeconds() - cpu0) / requests) * 1e6);
        results.push(result);
        if (floorRun) {
          ratios.push(result.rps / floorRun.rps);
          p99Ratios.push(result.p99Ms / floorRun.p99Ms);
        }
      }
      const row: Row = {
        title: target.title,
        concurrency,
        rps: median(results.map((r) => r.rps)),
        meanMs: median(results.map((r) => r.meanMs)),
        p50Ms: median(results.map((r) => r.p50Ms)),
        p99Ms: median(results.map((r) => r.p99Ms)),
        peakRssMiB: server.peakRssBytes() / 2 ** 20,
        cpuUsPerCheck: median(cpuPerCheck),
        checks: results.reduce((n, r) => n + r.requests, 0) + WARM_UP_REQUESTS,
        ...(floor ? { ratio: median(ratios), p99Ratio: median(p99Ratios) } : {}),
      };
      log(formatProgress(row));
      rows.push(row);
    }
    return rows;
  } catch (err) {
    if (err instanceof Verification) return [...rows, { title: target.title, concurrency: 0, note: `failed: ${err.message}` }];
    throw err;
  } finally {
    if (keep && rows.every((r) => !r.note)) {
      keep(server, bodyFile);
      kept = true;
    }
    if (!kept) {
      await server.stop();
      fs.rmSync(path.dirname(bodyFile), { recursive: true, force: true });
    }
  }
}

/**
 * One Check through a real gRPC client, which must be the expected allow; it also warms the caches. A 503 is
 * retried for a while: backend clients may still be starting when /readyz first answers.
 */
async function sampleCheck(server: ServerProcess, target: Target): Promise<string | undefined> {
  const client = new CheckClient(server.grpcAddr);
  const giveUp = Date.now() + SAMPLE_RETRY_MS;
  try {
    for (;;) {
      const result = interpretCheckResponse(await client.checkRaw(target.message));
      const problem = target.verify(result);
      if (!problem || result.httpStatus !== 503 || Date.now() > giveUp) return problem;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}

/**
 * Each worker has its own caches and backend clients: the sample Check warmed one of them. Unverified load
 * over several connections (the primary hands connections to workers in turn) until a whole run is allowed.
 */
async function warmEveryWorker(server: ServerProcess, bodyFile: string, workers: number): Promise<string | undefined> {
  const giveUp = Date.now() + SAMPLE_RETRY_MS;
  const shape: LoadShape = { connections: 2 * workers, streamsPerConnection: 1 };
  for (;;) {
    const before = await readDecisionCounts(server.adminUrl);
    const result = await runH2load({ grpcAddr: server.grpcAddr, bodyFile, shape, requests: 1_000 });
    const counted = diffCounts(await readDecisionCounts(server.adminUrl), before);
    if (result.failed === 0 && counted.allow === 1_000) return undefined;
    if (Date.now() > giveUp) return `workers still not all answering allow after ${SAMPLE_RETRY_MS / 1000} s: ${JSON.stringify(counted)}`;
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** One h2load run, checked against the server's counters: every request answered, and answered allow. */
async function verifiedRun(server: ServerProcess, bodyFile: string, shape: LoadShape, requests: number): Promise<LoadResult> {
  const before = await readDecisionCounts(server.adminUrl);
  const result = await runH2load({ grpcAddr: server.grpcAddr, bodyFile, shape, requests });
  const counted = diffCounts(await readDecisionCounts(server.adminUrl), before);
  if (result.failed > 0 || result.succeeded !== requests) {
    throw new Verification(`h2load: ${result.succeeded}/${requests} succeeded, ${result.failed} failed`);
  }
  const others = Object.entries(counted).filter(([k]) => k !== 'allow');
  if ((counted.allow ?? 0) !== requests || others.length > 0) {
    throw new Verification(`server counted ${JSON.stringify(counted)} for ${requests} requests (expected all allow)`);
  }
  return result;
}

function formatProgress(r: Row): string {
  const ratio = r.ratio === undefined ? '' : `  ${(r.ratio * 100).toFixed(0)}% of floor (p99 ${fmt(r.p99Ratio, 2)}×)`;
  return `  c=${String(r.concurrency).padEnd(3)} ${fmt(r.rps, 0).padStart(7)} rps  mean ${fmt(r.meanMs, 2)} ms  p50 ${fmt(r.p50Ms, 2)}  p99 ${fmt(r.p99Ms, 2)}${ratio}  CPU ${fmt(r.cpuUsPerCheck, 0)} µs/check  peak RSS ${fmt(r.peakRssMiB, 0)} MiB`;
}

function fmt(n: number | undefined, digits: number): string {
  return n === undefined || Number.isNaN(n) ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function scenarioTarget(s: Scenario, env: ScenarioEnv, policiesDir: string, redisUrl: string | undefined, opts: LoadOptions): Target {
  const profiling = opts.cpuProfile?.scenario === s.id;
  return {
    title: s.title,
    workers: s.workers ?? 1,
    message: serializeCheckRequest(buildCheckRequest(s.request(env))),
    verify: (r) => s.verify(r, env),
    start: () =>
      spawnServer({
        script: 'bench/egress-authz-entry',
        runner: opts.runner,
        args: [
          'serve',
          '--policies', policiesDir,
          '--watch', 'false',
          ...(s.workers && s.workers > 1 ? ['--workers', String(s.workers)] : []),
          ...s.serveFlags({ ...env, redisUrl }),
          ...opts.extraServeArgs,
        ],
        nodeFlags: [...opts.extraNodeFlags, ...(profiling ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfile!.dir}`] : [])],
      }),
  };
}

/**
 * The floor decodes the same request the identity scenarios send (with a ~1 KB ServiceAccount token).
 * `grpc-js` is the floor the targets are set against; `h2` is the same no-op on egress-authz's own transport.
 */
function floorTarget(runner: Runner, cpuProfile: LoadOptions['cpuProfile'], env: ScenarioEnv, transport: 'grpc-js' | 'h2'): Target {
  const id = transport === 'h2' ? 'floor-h2' : 'floor';
  return {
    title: transport === 'h2' ? TRANSPORT_FLOOR_TITLE : FLOOR_TITLE,
    workers: 1,
    message: serializeCheckRequest(buildCheckRequest(workloadRequestFor(env.token))),
    verify: (r) => (r.allowed ? undefined : 'the floor did not answer OK'),
    start: () =>
      spawnServer({
        script: 'bench/floor-server',
        runner,
        args: ['--transport', transport],
        nodeFlags: cpuProfile?.scenario === id ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfile.dir}`] : [],
      }),
  };
}

export async function runLoadBenchmark(opts: LoadOptions): Promise<{ rows: Row[]; markdown: string; profiledStartupMs?: number }> {
  const log = (s: string) => console.log(s);
  const machine = machineInfo();
  if (!fs.existsSync(H2LOAD)) throw new Error(`${H2LOAD} not found: install h2load (Debian/Ubuntu: apt-get install nghttp2-client)`);
  log(`egress-authz load benchmark: ${describeMachine(machine)}`);
  log(`${opts.runs} run(s) of ~${opts.seconds} s per point, concurrency ${opts.concurrencies.join(', ')}\n`);
  const scenarios = SCENARIOS.filter((s) => opts.only.length === 0 || opts.only.includes(s.id));
  if (opts.runner === 'compiled') await buildServers(log);
  const backends: Backends = await startBackends();
  const env: ScenarioEnv = { backends, token: backends.workloadToken(BENCH_SERVICE_ACCOUNT) };
  const rows: Row[] = [];
  const dirs: string[] = [];
  let profiledStartupMs: number | undefined;
  let floor: PairedFloor | undefined;
  try {
    log(FLOOR_TITLE);
    const floorTargetSpec = floorTarget(opts.runner, opts.cpuProfile, env, 'grpc-js');
    const floorRows = await measureTarget(floorTargetSpec, opts, log, undefined, (server, bodyFile) => (floor = { server, bodyFile }));
    if (opts.cpuProfile?.scenario === 'floor') profiledStartupMs = floorTargetSpec.loadStartedMs;
    for (const r of floorRows) if (r.rps) Object.assign(r, { ratio: 1, p99Ratio: 1 });
    rows.push(...floorRows);
    if (!floor) throw new Error(`the floor did not measure: ${floorRows.map((r) => r.note).join('; ')}`);
    log(TRANSPORT_FLOOR_TITLE);
    const transportFloor = floorTarget(opts.runner, opts.cpuProfile, env, 'h2');
    rows.push(...(await measureTarget(transportFloor, opts, log, floor)));
    if (opts.cpuProfile?.scenario === 'floor-h2') profiledStartupMs = transportFloor.loadStartedMs;

    for (const s of scenarios) {
      log(s.title);
      let redisUrl: string | undefined;
      if (s.needsRedis) {
        try {
          redisUrl = await backends.redisUrl();
        } catch (err) {
          log(`  skipped: ${(err as Error).message}`);
          rows.push({ title: s.title, concurrency: 0, note: `skipped: no redis-server (${(err as Error).message.split('\n')[0]})` });
          continue;
        }
      }
      const dir = writePolicyDir(s.files(env));
      dirs.push(dir);
      const problem = await policyLoadProblem(dir, { kubeconfig: backends.kubeconfigPath, redisUrl });
      if (problem) {
        log(`  skipped: ${problem}`);
        rows.push({ title: s.title, concurrency: 0, note: `skipped: ${problem}` });
        continue;
      }
      const target = scenarioTarget(s, env, dir, redisUrl, opts);
      const scenarioRows = await measureTarget(target, opts, log, floor);
      if (opts.cpuProfile?.scenario === s.id) profiledStartupMs = target.loadStartedMs;
      for (const r of scenarioRows) if (r.note) log(`  ${r.note}`);
      rows.push(...scenarioRows);
    }
  } finally {
    if (floor) {
      await floor.server.stop();
      fs.rmSync(path.dirname(floor.bodyFile), { recursive: true, force: true });
    }
    await backends.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
  const markdown = renderMarkdown(rows, opts, describeMachine(machine));
  return { rows, markdown, profiledStartupMs };
}

export function renderTable(rows: readonly Row[]): string {
  const lines = [
    '| scenario | concurrency | rps | mean ms | p50 ms | p99 ms | rps vs floor | p99 vs floor | server CPU µs/check | peak RSS MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.note) {
      lines.push(`| ${r.title} | – | ${r.note.replaceAll('|', '\\|')} | | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${r.title} | ${r.concurrency} | ${fmt(r.rps, 0)} | ${fmt(r.meanMs, 3)} | ${fmt(r.p50Ms, 3)} | ${fmt(r.p99Ms, 3)} | ${r.ratio === undefined ? '–' : `${(r.ratio * 100).toFixed(0)}%`} | ${r.p99Ratio === undefined ? '–' : `${fmt(r.p99Ratio, 2)}×`} | ${fmt(r.cpuUsPerCheck, 0)} | ${fmt(r.peakRssMiB, 0)} |`,
    );
  }
  return lines.join('\n');
}

function renderMarkdown(rows: readonly Row[], opts: LoadOptions, machine: string): string {
  const checks = rows.reduce((n, r) => n + (r.checks ?? 0), 0);
  const shapes = opts.concurrencies.map((c) => {
    const s = shapeFor(c);
    return `${c} = ${s.connections} connection(s) × ${s.streamsPerConnection} stream(s)`;
  });
  return [
    `# egress-authz load benchmark, ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Machine: ${machine}.`,
    `Load: h2load, one thread, pre-framed gRPC CheckRequest; concurrency ${shapes.join('; ')}.`,
    ...(opts.extraServeArgs.length ? [`egress-authz ran with extra flags: \`${opts.extraServeArgs.join(' ')}\`.`] : []),
    ...(opts.extraNodeFlags.length ? [`egress-authz ran with node flags: \`${opts.extraNodeFlags.join(' ')}\`.`] : []),
    `Each point: a verified warm-up of ${WARM_UP_REQUESTS} requests, then the median of ${opts.runs} run(s) of ~${opts.seconds} s. ` +
      `The floor server stays up throughout: each scenario run follows a floor run of the same shape, and "vs floor" is the median of those paired ratios.`,
    `Every request of every run was checked against the server's own \`egress_authz_checks_total\` counter: ` +
      `${checks.toLocaleString('en-US')} checks, all answered allow (rows marked failed did not pass).`,
    '',
    renderTable(rows),
    '',
    scalingNote(rows),
  ].join('\n');
}

/**
 * 2 workers vs 1 for the injection scenario, from the paired ratios (each against the floor measured just
 * before it), so that the machine's drift between the two scenarios' runs cancels; the plain rps quotient too.
 */
function scalingNote(rows: readonly Row[]): string {
  const one = rows.filter((r) => r.title === SCENARIOS.find((s) => s.id === 'inject')?.title && r.rps);
  const two = rows.filter((r) => r.title === SCENARIOS.find((s) => s.id === 'inject-2w')?.title && r.rps);
  const parts: string[] = [];
  for (const r2 of two) {
    const r1 = one.find((r) => r.concurrency === r2.concurrency);
    if (!r1?.rps || !r2.rps) continue;
    const paired = r1.ratio && r2.ratio ? `${(r2.ratio / r1.ratio).toFixed(2)}× (paired)` : '';
    parts.push(`c=${r2.concurrency}: ${[paired, `${(r2.rps / r1.rps).toFixed(2)}× (rps)`].filter(Boolean).join(', ')}`);
  }
  return parts.length ? `Scaling, credential injection, 2 workers vs 1: ${parts.join('; ')}.` : '';
}
