// Flags + environment → one typed Config. Every flag has an EGRESS_AUTHZ_* variable; flags win.
import type { LevelWithSilent } from 'pino';
import type { DecisionLogMode } from './observability/decision-log.js';

export interface ServeConfig {
  policies: string;
  listen: string;
  adminListen: string;
  logLevel: LevelWithSilent;
  decisionLog: DecisionLogMode;
  checkDeadlineMs: number;
  shutdownTimeoutMs: number;
  defaultDecision: 'deny' | 'allow';
  kubeconfig?: string;
  redisUrl?: string;
  vaultAddr?: string;
  workers: number;
  watch: boolean;
  // Optional so hand-built configs (tests, embedders) stay short; startApp fills them from SERVE_DEFAULTS.
  /** Quiet period after the last file event before a reload. */
  watchDebounceMs?: number;
  /** Content check interval that catches changes file events miss (0 = off). */
  watchPollIntervalMs?: number;
  /** After SIGTERM: keep answering, reported not ready, for this long before closing the port. */
  shutdownDelayMs?: number;
  /** Fraction (0–1) of allow decisions written to the decision log; denies are always written. */
  decisionLogSampleRate?: number;
  /** Admin POST /debug/explain for loopback clients (src/server/explain-endpoint.ts); off by default. */
  enableExplain?: boolean;
}

export interface FlagSpec {
  name: string;
  env: string;
  default?: string;
  help: string;
}

export const SERVE_FLAGS: readonly FlagSpec[] = [
  { name: 'policies', env: 'EGRESS_AUTHZ_POLICIES', default: 'policies', help: 'directory of policy files' },
  { name: 'listen', env: 'EGRESS_AUTHZ_LISTEN', default: '0.0.0.0:50051', help: 'gRPC listen address (ext_authz + health)' },
  { name: 'admin-listen', env: 'EGRESS_AUTHZ_ADMIN_LISTEN', default: '0.0.0.0:8080', help: 'admin HTTP address (/healthz /readyz /metrics)' },
  { name: 'log-level', env: 'EGRESS_AUTHZ_LOG_LEVEL', default: 'info', help: 'trace|debug|info|warn|error|fatal|silent' },
  { name: 'decision-log', env: 'EGRESS_AUTHZ_DECISION_LOG', default: 'all', help: 'all|deny|off: which decisions are logged' },
  { name: 'decision-log-sample', env: 'EGRESS_AUTHZ_DECISION_LOG_SAMPLE', default: '1', help: 'fraction 0–1 of allow decisions logged (denies: always)' },
  { name: 'check-deadline', env: 'EGRESS_AUTHZ_CHECK_DEADLINE', default: '150ms', help: 'budget for one Check (below Envoy’s 200 ms timeout); a shorter grpc-timeout from Envoy cuts it to 90% of that (at most that less 5 ms)' },
  { name: 'shutdown-delay', env: 'EGRESS_AUTHZ_SHUTDOWN_DELAY', default: '0s', help: 'on SIGTERM, keep answering (not ready) this long before closing' },
  { name: 'shutdown-timeout', env: 'EGRESS_AUTHZ_SHUTDOWN_TIMEOUT', default: '15s', help: 'drain time for in-flight Checks on SIGTERM' },
  { name: 'default-decision', env: 'EGRESS_AUTHZ_DEFAULT_DECISION', default: 'deny', help: 'deny|allow for hosts no policy governs' },
  { name: 'kubeconfig', env: 'EGRESS_AUTHZ_KUBECONFIG', help: 'kubeconfig path (default: in-cluster config)' },
  { name: 'redis-url', env: 'EGRESS_AUTHZ_REDIS_URL', help: 'Redis URL for shared rate limits (default: in-memory)' },
  { name: 'vault-addr', env: 'EGRESS_AUTHZ_VAULT_ADDR', help: 'default Vault address for vault metadata sources' },
  { name: 'workers', env: 'EGRESS_AUTHZ_WORKERS', default: '1', help: 'worker processes sharing the gRPC port (1–64)' },
  { name: 'watch', env: 'EGRESS_AUTHZ_WATCH', default: 'true', help: 'reload policies when files change (true|false)' },
  { name: 'watch-debounce', env: 'EGRESS_AUTHZ_WATCH_DEBOUNCE', default: '200ms', help: 'quiet time after a file change before reloading' },
  { name: 'watch-poll-interval', env: 'EGRESS_AUTHZ_WATCH_POLL_INTERVAL', default: '10s', help: 'content check that catches missed file events (0 = off)' },
  { name: 'enable-explain', env: 'EGRESS_AUTHZ_ENABLE_EXPLAIN', default: 'false', help: 'admin POST /debug/explain for loopback clients (true|false)' },
];

export class UsageError extends Error {}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "150ms", "2s", "1m30s" (Go style, as Kubernetes manifests write them), "500" (ms) → milliseconds. */
export function parseDuration(s: string, what: string): number {
  const text = s.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text));
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== text) {
    throw new UsageError(`${what}: expected a duration like 150ms, 2s, 1m30s; got "${s}"`);
  }
  return Math.round(parts.reduce((total, p) => total + Number(p[1]) * DURATION_UNIT_MS[p[2]!]!, 0));
}

/** true|false|1|0|yes|no|on|off → boolean. */
export function parseBoolean(s: string, what: string): boolean {
  const v = s.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new UsageError(`${what}: expected true or false; got "${s}"`);
}

/** Parses `--flag value`, `--flag=value` and `-H value` style arguments into a map (repeatable flags → arrays). */
export function parseArgs(argv: readonly string[], repeatable: readonly string[] = []): { flags: Map<string, string[]>; positional: string[] } {
  const flags = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') || (a.startsWith('-') && a.length === 2)) {
      let name = a.replace(/^--?/, '');
      let value: string | undefined;
      const eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.slice(eq + 1);
        name = name.slice(0, eq);
      } else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) {
        value = argv[++i];
      } else {
        value = 'true';
      }
      const list = flags.get(name) ?? [];
      if (list.length && !repeatable.includes(name)) throw new UsageError(`--${name} given twice`);
      list.push(value!);
      flags.set(name, list);
    } else {
      positional.push(a);
    }
  }
  return { flags, positional };
}

export function resolveServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const { flags, positional } = parseArgs(argv);
  if (positional.length) throw new UsageError(`unexpected argument "${positional[0]}"`);
  const known = new Set(SERVE_FLAGS.map((f) => f.name));
  for (const k of flags.keys()) if (!known.has(k)) throw new UsageError(`unknown flag --${k}`);
  const get = (name: string): string | undefined => {
    const spec = SERVE_FLAGS.find((f) => f.name === name)!;
    // An empty variable counts as unset (a manifest's `value: ""` should not erase a default).
    return flags.get(name)?.[0] ?? (env[spec.env] || undefined) ?? spec.default;
  };
  const level = get('log-level')!;
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(level)) throw new UsageError(`--log-level: unknown level "${level}"`);
  const dl = get('decision-log')!;
  if (!['all', 'deny', 'off'].includes(dl)) throw new UsageError(`--decision-log: all, deny or off`);
  const dd = get('default-decision')!;
  if (dd !== 'deny' && dd !== 'allow') throw new UsageError('--default-decision: deny or allow');
  const workers = Number(get('workers'));
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError('--workers: an integer from 1 to 64');
  const sampleText = get('decision-log-sample')!;
  const sample = Number(sampleText);
  if (!/^\s*[\d.]+\s*$/.test(sampleText) || !(sample >= 0 && sample <= 1)) throw new UsageError('--decision-log-sample: a number from 0 to 1');
  return {
    policies: get('policies')!,
    listen: get('listen')!,
    adminListen: get('admin-listen')!,
    logLevel: level as LevelWithSilent,
    decisionLog: dl as DecisionLogMode,
    checkDeadlineMs: parseDuration(get('check-deadline')!, '--check-deadline'),
    shutdownTimeoutMs: parseDuration(get('shutdown-timeout')!, '--shutdown-timeout'),
    defaultDecision: dd,
    kubeconfig: get('kubeconfig'),
    redisUrl: get('redis-url'),
    vaultAddr: get('vault-addr'),
    workers,
    watch: parseBoolean(get('watch')!, '--watch'),
    watchDebounceMs: parseDuration(get('watch-debounce')!, '--watch-debounce'),
    watchPollIntervalMs: parseDuration(get('watch-poll-interval')!, '--watch-poll-interval'),
    shutdownDelayMs: parseDuration(get('shutdown-delay')!, '--shutdown-delay'),
    decisionLogSampleRate: sample,
    enableExplain: parseBoolean(get('enable-explain')!, '--enable-explain'),
  };
}

/** Every setting at its default (flags and environment ignored). */
export const SERVE_DEFAULTS: Readonly<Required<Omit<ServeConfig, 'kubeconfig' | 'redisUrl' | 'vaultAddr'>>> = (() => {
  const c = resolveServeConfig([], {});
  return {
    ...c,
    watchDebounceMs: c.watchDebounceMs!,
    watchPollIntervalMs: c.watchPollIntervalMs!,
    shutdownDelayMs: c.shutdownDelayMs!,
    decisionLogSampleRate: c.decisionLogSampleRate!,
    enableExplain: c.enableExplain!,
  };
})();

/** The flag table of docs/operations.md (a test keeps the document in step with SERVE_FLAGS). */
export function serveFlagsMarkdown(): string {
  const rows = SERVE_FLAGS.map(
    (f) => `| \`--${f.name}\` | \`${f.env}\` | ${f.default !== undefined ? `\`${f.default}\`` : '(unset)'} | ${f.help.replace(/\|/g, '\\|')} |`,
  );
  return ['| Flag | Environment variable | Default | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
