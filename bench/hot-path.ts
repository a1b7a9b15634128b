// Where a warm Check's CPU goes, in one process and without gRPC: decode + request view, the authorizer
// (policy selection, identity / metadata / authorization / rate-limit stages and the response, all cache
// hits), the per-Check metrics, the decision log line, and the response encode. Compare the sum with the
// load table's "server CPU µs/check": the rest is the transport (grpc-js + HTTP/2), i.e. the floor.
// `npm run bench -- hotpath`
import fs from 'node:fs';
import pino from 'pino';
import { buildCheckRequest } from '../src/cli/check-client.js';
import { deserializeCheckRequest, serializeCheckRequest, serializeCheckResponse } from '../src/envoy/codec.js';
import { toRequestView } from '../src/envoy/request.js';
import { toCheckResponse } from '../src/envoy/response.js';
import { logDecision } from '../src/observability/decision-log.js';
import { BatchedLineStream, createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { Authorizer, type CheckOutcome } from '../src/pipeline/authorizer.js';
import { Services } from '../src/pipeline/services.js';
import { loadPolicyDirectory } from '../src/policy/load.js';
import { startBackends, type Backends } from './lib/backends.js';
import { describeMachine, machineInfo } from './lib/machine.js';
import { writePolicyDir } from './lib/policy-check.js';
import { median } from './lib/stats.js';
import { BENCH_SERVICE_ACCOUNT, SCENARIOS, type ScenarioEnv } from './scenarios.js';

const ITERATIONS = 20_000;

/** µs per call of an async step, run one at a time (as a Check's own work is): median of 5 batches. */
async function measure(fn: () => unknown): Promise<number> {
  const batch = async () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS; i++) await fn();
    return Number(process.hrtime.bigint() - t0) / ITERATIONS / 1000;
  };
  await batch();
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) samples.push(await batch());
  return median(samples);
}

async function scenarioCosts(id: string, backends: Backends, env: ScenarioEnv): Promise<string[] | string> {
  const scenario = SCENARIOS.find((s) => s.id === id)!;
  const redisUrl = scenario.needsRedis ? await backends.redisUrl() : undefined;
  const dir = writePolicyDir(scenario.files(env));
  // The server's own logger and stdout batching (lines rendered at the end of a turn), writing to /dev/null.
  const stdout = new BatchedLineStream(pino.destination({ dest: fs.openSync('/dev/null', 'w'), sync: false }));
  const logger = createLogger('info', stdout);
  const metrics = new Metrics();
  const services = new Services(
    { checkDeadlineMs: 150, defaultDecision: 'deny', kubeconfig: backends.kubeconfigPath, redisUrl },
    logger,
    metrics,
  );
  try {
    const loaded = loadPolicyDirectory(dir, services);
    if (!loaded.ok) return `skipped: ${loaded.diagnostics[0]?.message ?? 'policies do not load'}`;
    const observer = metrics.stageObserver();
    for (const p of [...loaded.set.policies, ...loaded.set.globals]) p.observeStages(observer);
    await services.warm();
    const authorizer = new Authorizer(services, () => loaded.set);
    const bytes = serializeCheckRequest(buildCheckRequest(scenario.request(env)));
    const view = toRequestView(deserializeCheckRequest(bytes));
    let outcome: CheckOutcome | undefined;
    for (let i = 0; i < 100 && outcome?.decision.kind !== 'allow'; i++) {
      outcome = await authorizer.check(view);
      if (outcome.decision.kind !== 'allow') await new Promise((r) => setTimeout(r, 100));
    }
    if (outcome?.decision.kind !== 'allow') return `failed: ${outcome?.decision.kind} ${outcome?.decision.reason}`;
    const decided = outcome;
    const decodeView = await measure(() => toRequestView(deserializeCheckRequest(bytes)));
    const authorize = await measure(() => authorizer.decide(view));
    const checkMetrics = await measure(() => metrics.recordCheck(decided.decision.policy, 'allow', 200, 0.0002));
    // Under load one event-loop turn answers a few Checks: render and hand over the lines 8 at a time.
    let logged = 0;
    const decisionLine = await measure(() => {
      logDecision(logger, { mode: 'all', sampleRate: 1 }, view, decided, 0.2);
      if (++logged % 8 === 0) stdout.flush();
    });
    const encode = await measure(() => serializeCheckResponse(toCheckResponse(decided.decision)));
    const total = decodeView + authorize + checkMetrics + decisionLine + encode;
    const f = (n: number) => n.toFixed(1);
    return [scenario.title, f(decodeView), f(authorize), f(checkMetrics), f(decisionLine), f(encode), f(total)];
  } finally {
    await services.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runHotPathBenchmark(only: readonly string[] = []): Promise<string> {
  const backends = await startBackends();
  const env: ScenarioEnv = { backends, token: backends.workloadToken(BENCH_SERVICE_ACCOUNT) };
  const lines = [
    `## Warm Check cost by part, in-process (µs per Check, one at a time) — ${describeMachine(machineInfo())}`,
    '',
    '| scenario | decode + view | authorizer | check metrics | decision log line | encode | sum |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  try {
    for (const s of SCENARIOS.filter((x) => (!x.workers || x.workers === 1) && (only.length === 0 || only.includes(x.id)))) {
      const row = await scenarioCosts(s.id, backends, env);
      lines.push(typeof row === 'string' ? `| ${s.title} | ${row} | | | | | |` : `| ${row.join(' | ')} |`);
      console.log(lines[lines.length - 1]);
    }
  } finally {
    await backends.close();
  }
  const text = lines.join('\n');
  console.log(`\n${text}`);
  return text;
}
