// Flags + environment → ServeConfig: every flag is honoured through its EGRESS_AUTHZ_* variable, flags win,
// durations and booleans parse the way manifests write them, bad values are usage errors.
import { describe, expect, it } from 'vitest';
import { SERVE_DEFAULTS, SERVE_FLAGS, UsageError, parseBoolean, parseDuration, resolveServeConfig, type ServeConfig } from '../src/config.js';

/** For every flag: a non-default value and what it must set. A new flag without a row here fails the first test. */
const SAMPLES: Record<string, { value: string; expect: Partial<ServeConfig> }> = {
  policies: { value: '/etc/egress-authz/policies', expect: { policies: '/etc/egress-authz/policies' } },
  listen: { value: '127.0.0.1:9001', expect: { listen: '127.0.0.1:9001' } },
  'admin-listen': { value: '127.0.0.1:9002', expect: { adminListen: '127.0.0.1:9002' } },
  'log-level': { value: 'debug', expect: { logLevel: 'debug' } },
  'decision-log': { value: 'deny', expect: { decisionLog: 'deny' } },
  'decision-log-sample': { value: '0.25', expect: { decisionLogSampleRate: 0.25 } },
  'check-deadline': { value: '120ms', expect: { checkDeadlineMs: 120 } },
  'shutdown-delay': { value: '5s', expect: { shutdownDelayMs: 5000 } },
  'shutdown-timeout': { value: '1m30s', expect: { shutdownTimeoutMs: 90_000 } },
  'default-decision': { value: 'allow', expect: { defaultDecision: 'allow' } },
  kubeconfig: { value: '/home/me/.kube/config', expect: { kubeconfig: '/home/me/.kube/config' } },
  'redis-url': { value: 'redis://redis:6379/0', expect: { redisUrl: 'redis://redis:6379/0' } },
  'vault-addr': { value: 'https://vault:8200', expect: { vaultAddr: 'https://vault:8200' } },
  workers: { value: '4', expect: { workers: 4 } },
  watch: { value: 'false', expect: { watch: false } },
  'watch-debounce': { value: '1s', expect: { watchDebounceMs: 1000 } },
  'watch-poll-interval': { value: '0', expect: { watchPollIntervalMs: 0 } },
  'enable-explain': { value: 'true', expect: { enableExplain: true } },
};

describe('resolveServeConfig', () => {
  it('honours every flag through its environment variable, and the flag wins over the variable', () => {
    expect(SERVE_FLAGS.map((f) => f.name).sort()).toEqual(Object.keys(SAMPLES).sort());
    for (const f of SERVE_FLAGS) {
      const s = SAMPLES[f.name]!;
      expect(resolveServeConfig([], { [f.env]: s.value }), f.env).toMatchObject(s.expect);
      expect(resolveServeConfig([`--${f.name}`, s.value], {}), `--${f.name}`).toMatchObject(s.expect);
      // The flag beats the variable: the variable here holds the default (or, without one, another value).
      const other = f.default ?? 'other';
      const viaBoth = resolveServeConfig([`--${f.name}=${s.value}`], { [f.env]: other });
      expect(viaBoth, `--${f.name} over ${f.env}`).toMatchObject(s.expect);
    }
  });

  it('uses the documented defaults, and treats an empty variable as unset', () => {
    const c = resolveServeConfig([], {});
    expect(c).toMatchObject({
      policies: 'policies',
      listen: '0.0.0.0:50051',
      adminListen: '0.0.0.0:8080',
      logLevel: 'info',
      decisionLog: 'all',
      decisionLogSampleRate: 1,
      checkDeadlineMs: 150,
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 15_000,
      defaultDecision: 'deny',
      workers: 1,
      watch: true,
      watchDebounceMs: 200,
      watchPollIntervalMs: 10_000,
    });
    expect(c.kubeconfig).toBeUndefined();
    expect(resolveServeConfig([], { EGRESS_AUTHZ_POLICIES: '', EGRESS_AUTHZ_WORKERS: '' })).toMatchObject({ policies: 'policies', workers: 1 });
    expect(SERVE_DEFAULTS).toMatchObject({ watchDebounceMs: 200, shutdownDelayMs: 0, decisionLogSampleRate: 1 });
  });

  it('rejects bad values and unknown flags with a usage error naming the flag', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--workers', '0'], /--workers/],
      [['--workers', '2.5'], /--workers/],
      [['--decision-log', 'some'], /--decision-log/],
      [['--decision-log-sample', '1.5'], /--decision-log-sample/],
      [['--decision-log-sample', 'half'], /--decision-log-sample/],
      [['--watch', 'maybe'], /--watch/],
      [['--shutdown-delay', '5 seconds'], /--shutdown-delay/],
      [['--log-level', 'loud'], /--log-level/],
      [['--no-such-flag', 'x'], /unknown flag --no-such-flag/],
      [['stray'], /unexpected argument/],
    ];
    for (const [argv, msg] of bad) expect(() => resolveServeConfig(argv, {}), argv.join(' ')).toThrow(msg);
    expect(() => resolveServeConfig([], { EGRESS_AUTHZ_WORKERS: 'many' })).toThrow(UsageError);
  });
});

describe('parseDuration / parseBoolean', () => {
  it('parses durations as Kubernetes manifests write them', () => {
    expect(parseDuration('150ms', 'x')).toBe(150);
    expect(parseDuration('0.2s', 'x')).toBe(200);
    expect(parseDuration('1m30s', 'x')).toBe(90_000);
    expect(parseDuration('1h', 'x')).toBe(3_600_000);
    expect(parseDuration('500', 'x')).toBe(500);
    expect(parseDuration('0', 'x')).toBe(0);
    for (const bad of ['', 's', '1d', '5 s', '1m30', '-1s']) expect(() => parseDuration(bad, '--d'), bad).toThrow(/--d/);
  });

  it('parses booleans', () => {
    for (const t of ['true', 'TRUE', '1', 'yes', 'on']) expect(parseBoolean(t, 'x')).toBe(true);
    for (const f of ['false', '0', 'no', 'off']) expect(parseBoolean(f, 'x')).toBe(false);
    expect(() => parseBoolean('y', '--b')).toThrow(/--b/);
  });
});
