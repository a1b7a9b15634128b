// The decision log: one line per Check with the fields operators need, modes and sampling, secret scrubbing.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildCheckRequest } from '../../src/cli/check-client.js';
import { deserializeCheckRequest, serializeCheckRequest } from '../../src/envoy/codec.js';
import { toRequestView } from '../../src/envoy/request.js';
import { logDecision, scrubSecrets, shouldLogDecision, type DecisionLogOptions } from '../../src/observability/decision-log.js';
import { createLogger, BatchedLineStream } from '../../src/observability/logger.js';
import type { CheckOutcome } from '../../src/pipeline/authorizer.js';
import { allow, deny } from '../../src/pipeline/decision.js';

function capture(level: 'info' | 'debug' | 'warn') {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

const view = toRequestView(
  deserializeCheckRequest(
    serializeCheckRequest(
      buildCheckRequest({
        host: 'api.vendor.example',
        method: 'POST',
        path: '/v1/chat?key=k-123456',
        headers: { 'x-request-id': 'rid-1', authorization: 'Bearer tok-abcdef' },
        sourceAddress: '10.1.2.3',
        principal: 'spiffe://cluster.local/ns/team-a/sa/app',
      }),
    ),
  ),
);

const allowed: CheckOutcome = {
  decision: {
    ...allow('team-a/vendor', 'authorization', 'all rules passed'),
    identity: 'system:serviceaccount:team-a:app',
    headers: [{ key: 'authorization', value: 'Bearer sk-injected-999', action: 'overwrite' }],
    headersToRemove: ['x-api-key'],
  },
  secrets: ['sk-injected-999'],
};
const denied: CheckOutcome = { decision: deny('team-a/vendor', 'identity', 401, 'team-keys: unknown API key'), secrets: [] };
const all: DecisionLogOptions = { mode: 'all', sampleRate: 1 };

describe('decision log', () => {
  it('writes one line per Check with the operational fields', () => {
    const { logger, lines } = capture('info');
    logDecision(logger, all, view, allowed, 1.23456);
    logDecision(logger, all, view, denied, 0.5);
    logger.flush();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      msg: 'decision',
      level: 'info',
      requestId: 'rid-1',
      policy: 'team-a/vendor',
      identity: 'system:serviceaccount:team-a:app',
      source: '10.1.2.3',
      principal: 'spiffe://cluster.local/ns/team-a/sa/app',
      method: 'POST',
      host: 'api.vendor.example',
      path: '/v1/chat',
      decision: 'allow',
      status: 200,
      reason: 'all rules passed',
      evaluator: 'authorization',
      injected: ['authorization'],
      removed: ['x-api-key'],
      durationMs: 1.235,
    });
    expect(typeof lines[0]!.time).toBe('string');
    expect(lines[1]).toMatchObject({ decision: 'deny', status: 401, evaluator: 'identity', reason: 'team-keys: unknown API key' });
    // Debug-only detail stays out at info.
    expect(lines[0]!.headers).toBeUndefined();
    expect(JSON.stringify(lines)).not.toContain('sk-injected-999');
    expect(JSON.stringify(lines)).not.toContain('tok-abcdef');
    expect(JSON.stringify(lines)).not.toContain('k-123456');
  });

  it('is a pino line: level, time, the logger bindings (service, worker), msg; one JSON object per line', () => {
    const { logger, lines } = capture('info');
    logDecision(logger.child({ worker: 2 }), all, view, allowed, 1);
    logger.info({ other: true }, 'an ordinary line');
    logger.flush();
    expect(lines).toHaveLength(2);
    expect(Object.keys(lines[0]!).slice(0, 4)).toEqual(['level', 'time', 'service', 'worker']);
    expect(lines[0]).toMatchObject({ level: 'info', service: 'egress-authz', worker: 2, msg: 'decision' });
    expect(Number.isNaN(Date.parse(String(lines[0]!.time)))).toBe(false);
    // Same envelope as any pino line from the same logger.
    expect(Object.keys(lines[1]!).slice(0, 3)).toEqual(['level', 'time', 'service']);
  });

  it('on the server stdout (BatchedLineStream) renders the same line at the end of the turn, in order', async () => {
    const writes: string[] = [];
    const stream = new BatchedLineStream({ write: (d: string) => writes.push(d), flush: (cb) => cb?.(), flushSync: () => undefined });
    const logger = createLogger('info', stream);
    const immediate = capture('info');
    logger.info('before');
    logDecision(logger, all, view, allowed, 1.5);
    logger.info('after');
    logDecision(immediate.logger, all, view, allowed, 1.5);
    expect(writes).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    stream.flushSync();
    expect(writes).toHaveLength(1);
    const lines = writes[0]!.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.msg)).toEqual(['before', 'decision', 'after']);
    const { time: _t1, ...deferred } = lines[1]!;
    const { time: _t2, ...direct } = immediate.lines[0]!;
    expect(deferred).toEqual(direct);
    expect(deferred).toMatchObject({ policy: 'team-a/vendor', identity: 'system:serviceaccount:team-a:app', injected: ['authorization'] });
  });

  it('at debug adds header names and query keys, never their values', () => {
    const { logger, lines } = capture('debug');
    logDecision(logger, all, view, allowed, 1);
    logger.flush();
    expect(lines[0]).toMatchObject({ headers: expect.arrayContaining(['authorization', 'x-request-id']), queryKeys: ['key'] });
    expect(JSON.stringify(lines)).not.toContain('tok-abcdef');
    expect(JSON.stringify(lines)).not.toContain('k-123456');
  });

  it('honours --decision-log all|deny|off and the log level', () => {
    for (const [mode, expected] of [['all', 2], ['deny', 1], ['off', 0]] as const) {
      const { logger, lines } = capture('info');
      logDecision(logger, { mode, sampleRate: 1 }, view, allowed, 1);
      logDecision(logger, { mode, sampleRate: 1 }, view, denied, 1);
      logger.flush();
      expect(lines, mode).toHaveLength(expected);
    }
    const { logger, lines } = capture('warn');
    logDecision(logger, all, view, denied, 1);
    expect(lines).toHaveLength(0);
  });

  it('samples allows but always writes denies', () => {
    let i = 0;
    const sequence = [0.05, 0.5, 0.95, 0.2];
    const sampled: DecisionLogOptions = { mode: 'all', sampleRate: 0.25, random: () => sequence[i++ % sequence.length]! };
    expect([1, 2, 3, 4].map(() => shouldLogDecision(sampled, true))).toEqual([true, false, false, true]);
    expect(shouldLogDecision({ mode: 'all', sampleRate: 0 }, true)).toBe(false);
    expect(shouldLogDecision({ mode: 'all', sampleRate: 0 }, false)).toBe(true);
    expect(shouldLogDecision({ mode: 'deny', sampleRate: 1 }, true)).toBe(false);
  });

  it('scrubs every secret the Check handled from free-text fields', () => {
    expect(scrubSecrets('user sk-injected-999 and sk-injected-999', ['sk-injected-999'])).toBe('user [redacted] and [redacted]');
    // Too short to scrub without destroying the line.
    expect(scrubSecrets('abc', ['ab'])).toBe('abc');
    const { logger, lines } = capture('info');
    const leaky: CheckOutcome = {
      decision: { ...deny('p', 'identity', 401, 'token tok-abcdef expired'), identity: 'tok-abcdef' },
      secrets: ['tok-abcdef'],
    };
    logDecision(logger, all, view, leaky, 1);
    logger.flush();
    expect(lines[0]).toMatchObject({ reason: 'token [redacted] expired', identity: '[redacted]' });
  });
});
