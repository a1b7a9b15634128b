// Compiles a `metadata:` section from YAML text and runs it on a hand-made Check: for unit tests of the
// metadata stage without a gRPC server or an identity backend (ctx.credential is set directly).
import { parseDocument } from 'yaml';
import type { RequestView } from '../../src/envoy/request-view.js';
import { compileMetadata } from '../../src/metadata/index.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createLogger } from '../../src/observability/logger.js';
import { CheckContext, type Stage } from '../../src/pipeline/context.js';
import type { Decision } from '../../src/pipeline/decision.js';
import { Services, type RuntimeConfig } from '../../src/pipeline/services.js';
import { Diagnostics, formatDiagnostic } from '../../src/policy/diagnostics.js';
import { SourceFile, YNode } from '../../src/policy/yaml-node.js';
import { Writable } from 'node:stream';

export interface Harness {
  readonly services: Services;
  readonly metrics: Metrics;
  /** Every log line (JSON) written through services.logger, at debug level. */
  readonly logs: string[];
}

export function harness(config: Partial<RuntimeConfig> = {}): Harness {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(line);
      cb();
    },
  });
  const metrics = new Metrics();
  const services = new Services({ checkDeadlineMs: 1000, defaultDecision: 'deny', ...config }, createLogger('debug', sink), metrics);
  return { services, metrics, logs };
}

/** Compiles `metadata:` YAML (the section's body). Returns the stage, or the formatted diagnostics. */
export function compile(yamlText: string, h: Harness, policy = 'test/policy'): { stage?: Stage; errors: string[] } {
  const src = new SourceFile('policy.yaml', yamlText);
  const doc = parseDocument(yamlText, { lineCounter: src.lineCounter });
  const diags = new Diagnostics();
  for (const e of doc.errors) diags.error(src.pos(e.pos[0]), `YAML: ${e.message.split('\n')[0]}`);
  const node = YNode.of(src, doc, diags);
  const stage = compileMetadata(node, { diags, services: h.services, policy, failurePolicy: 'Fail' });
  return { stage: diags.hasErrors ? undefined : stage, errors: diags.list.map(formatDiagnostic) };
}

export function requestView(over: Partial<RequestView> = {}): RequestView {
  const peer = { address: '10.0.0.1', port: 40000, principal: '', service: '', labels: {}, certificate: '' };
  return {
    streamId: '1',
    requestId: 'req-1',
    time: new Date(),
    method: 'POST',
    scheme: 'https',
    host: 'api.openai.com',
    authority: 'api.openai.com',
    hostPort: 0,
    path: '/v1/chat/completions',
    rawPath: '/v1/chat/completions',
    query: {},
    headers: {},
    protocol: 'HTTP/1.1',
    body: '',
    size: 0,
    source: peer,
    destination: { ...peer, address: '10.0.0.2', port: 443 },
    contextExtensions: {},
    metadataContext: {},
    routeMetadataContext: {},
    tlsSni: '',
    ...over,
    headerNames: over.headerNames ?? Object.keys(over.headers ?? {}),
  };
}

export interface RunOptions {
  view?: Partial<RequestView>;
  credential?: string;
  /** Whether the credential is a ServiceAccount token (as TokenReview accepts); default true. */
  serviceAccountToken?: boolean;
  identity?: Record<string, unknown>;
  deadlineMs?: number;
}

export interface RunResult {
  readonly decision: Decision | undefined;
  readonly ctx: CheckContext;
  readonly elapsedMs: number;
}

/** Runs the stage on one Check with the given identity and credential, within a deadline (default 5 s). */
export async function run(stage: Stage, opts: RunOptions = {}): Promise<RunResult> {
  const deadlineMs = opts.deadlineMs ?? 5000;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), deadlineMs);
  const ctx = new CheckContext(requestView(opts.view), Date.now() + deadlineMs, controller, undefined);
  (ctx.auth as { identity: unknown }).identity = opts.identity ?? null;
  if (opts.credential) {
    ctx.credential = opts.credential;
    ctx.credentialIsServiceAccountToken = opts.serviceAccountToken ?? true;
    ctx.secrets.push(opts.credential);
  }
  const t0 = performance.now();
  try {
    const decision = await stage.run(ctx);
    return { decision, ctx, elapsedMs: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}
