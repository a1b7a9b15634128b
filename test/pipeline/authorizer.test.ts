// The Check deadline: a slow pipeline answers 503 at the deadline while fast Checks started at the same time
// are answered on their own; the stages of a timed-out Check see its signal abort. Checks starting in the same
// millisecond share one deadline (one AbortController and timer), so these cases start Checks together.
import { afterEach, describe, expect, it } from 'vitest';
import { toRequestView } from '../../src/envoy/request.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Authorizer } from '../../src/pipeline/authorizer.js';
import type { CheckContext, Stage } from '../../src/pipeline/context.js';
import { Services } from '../../src/pipeline/services.js';
import { CompiledPolicy } from '../../src/policy/policy.js';
import { PolicySet } from '../../src/policy/policy-set.js';

const DEADLINE_MS = 60;

/** A stage that passes at once, or (header x-slow) waits until the Check's signal aborts. */
function gateStage(seen: { aborted: number }): Stage {
  return {
    evaluator: 'identity',
    name: 'gate',
    run(ctx: CheckContext) {
      if (ctx.view.headers['x-slow'] === undefined) return undefined;
      return new Promise<undefined>((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          seen.aborted++;
          resolve(undefined);
        });
      });
    },
  };
}

function authorizerWith(stage: Stage): Authorizer {
  const policy = new CompiledPolicy(
    'gate',
    [
      {
        name: 'gate',
        kind: 'EgressPolicy',
        pos: { file: 'gate.yaml', line: 1, col: 1 },
        failurePolicy: 'Fail',
        when: [],
        variables: [],
        identity: stage,
        response: { denials: {} },
      },
    ],
    ['gate.example.com'],
    ['gate'],
  );
  const services = new Services({ checkDeadlineMs: DEADLINE_MS, defaultDecision: 'deny' }, silentLogger, new Metrics());
  const set = new PolicySet([policy], [], 1);
  return new Authorizer(services, () => set);
}

function view(headers: Record<string, string> = {}) {
  return toRequestView({
    attributes: {
      request: { http: { method: 'GET', host: 'gate.example.com', path: '/', headers: { ':authority': 'gate.example.com', ...headers } } },
    },
  });
}

const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
afterEach(() => {
  process.off('warning', onWarning);
  warnings.length = 0;
});

describe('check deadline', () => {
  it('answers fast Checks at once and slow ones 503 at the deadline, when they start together', async () => {
    const seen = { aborted: 0 };
    const authorizer = authorizerWith(gateStage(seen));
    let slowSettled = false;
    const slow = authorizer.check(view({ 'x-slow': '1' })).finally(() => {
      slowSettled = true;
    });
    const fastOutcome = await authorizer.check(view());
    expect(fastOutcome.decision.kind).toBe('allow');
    // The fast Check did not wait for the deadline it shares with the slow one.
    expect(slowSettled).toBe(false);
    const slowOutcome = await slow;
    expect(slowOutcome.decision).toMatchObject({ kind: 'deny', status: 503 });
    expect(slowOutcome.decision.reason).toContain(`${DEADLINE_MS} ms deadline`);
    expect(seen.aborted).toBe(1);
  });

  it('keeps the deadline of a slow Check after the fast Checks beside it are answered', async () => {
    const seen = { aborted: 0 };
    const authorizer = authorizerWith(gateStage(seen));
    const slow = authorizer.check(view({ 'x-slow': '1' }));
    for (let i = 0; i < 5; i++) expect((await authorizer.check(view())).decision.kind).toBe('allow');
    expect((await slow).decision).toMatchObject({ kind: 'deny', status: 503 });
  });

  it('lets many concurrent stages wait on the deadline without a listener-leak warning', async () => {
    process.on('warning', onWarning);
    const seen = { aborted: 0 };
    const authorizer = authorizerWith(gateStage(seen));
    const outcomes = await Promise.all(Array.from({ length: 25 }, () => authorizer.check(view({ 'x-slow': '1' }))));
    expect(outcomes.every((o) => o.decision.kind === 'deny' && o.decision.status === 503)).toBe(true);
    expect(seen.aborted).toBe(25);
    await new Promise((r) => setImmediate(r));
    expect(warnings.map((w) => w.message)).toEqual([]);
  });

  it('starts a fresh deadline for a Check that arrives after an earlier one timed out', async () => {
    const seen = { aborted: 0 };
    const authorizer = authorizerWith(gateStage(seen));
    expect((await authorizer.check(view({ 'x-slow': '1' }))).decision).toMatchObject({ kind: 'deny', status: 503 });
    // A new Check must not inherit the aborted signal: it passes.
    expect((await authorizer.check(view())).decision.kind).toBe('allow');
  });
});
