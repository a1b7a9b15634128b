// Starts a real egress-authz (gRPC + admin HTTP) on loopback free ports, on a temp policy directory,
// with every log line captured so tests can assert on them (and search them for leaked secrets).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { startApp, type App } from '../../src/server/app.js';
import type { ServeConfig } from '../../src/config.js';
import { CheckClient } from '../../src/cli/check-client.js';

export interface TestServer {
  readonly app: App;
  readonly addr: string;
  readonly adminUrl: string;
  readonly client: CheckClient;
  readonly policiesDir: string;
  readonly metrics: Metrics;
  /** Every log line written so far (JSON strings). */
  readonly logs: string[];
  writePolicy(name: string, text: string): void;
  close(): Promise<void>;
}

export function makePolicyDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-policies-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

/** The seed policy files as users paste them: ../shared/seeds/policies beside the checkout. */
export const SHARED_SEED_POLICY_DIR = path.resolve(import.meta.dirname, '../../../shared/seeds/policies');
/** Byte-identical copies (test/fixtures/seed-policies, checked against the shared ones when present). */
export const VENDORED_SEED_POLICY_DIR = path.resolve(import.meta.dirname, '../fixtures/seed-policies');
export const SEED_POLICY_DIR = fs.existsSync(SHARED_SEED_POLICY_DIR) ? SHARED_SEED_POLICY_DIR : VENDORED_SEED_POLICY_DIR;

export function seedPolicy(name: string): string {
  return fs.readFileSync(path.join(SEED_POLICY_DIR, name), 'utf8');
}

export async function startTestServer(
  opts: { files?: Record<string, string>; policiesDir?: string; config?: Partial<ServeConfig> } = {},
): Promise<TestServer> {
  const policiesDir = opts.policiesDir ?? makePolicyDir(opts.files ?? {});
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(line);
      cb();
    },
  });
  const config: ServeConfig = {
    policies: policiesDir,
    listen: '127.0.0.1:0',
    adminListen: '127.0.0.1:0',
    logLevel: 'debug',
    decisionLog: 'all',
    checkDeadlineMs: 150,
    shutdownTimeoutMs: 5000,
    defaultDecision: 'deny',
    workers: 1,
    watch: false,
    ...opts.config,
  };
  const logger = createLogger(config.logLevel, sink);
  const metrics = new Metrics();
  const app = await startApp(config, logger, metrics);
  const addr = `127.0.0.1:${app.grpcPort}`;
  const client = new CheckClient(addr);
  return {
    app,
    addr,
    adminUrl: `http://127.0.0.1:${app.adminPort}`,
    client,
    policiesDir,
    metrics,
    logs,
    writePolicy(name, text) {
      fs.writeFileSync(path.join(policiesDir, name), text);
    },
    async close() {
      client.close();
      await app.shutdown();
    },
  };
}
