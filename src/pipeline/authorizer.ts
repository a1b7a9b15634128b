// One Check, end to end: RequestView → the governing policy → Decision, within the deadline, failing closed.
import type { RequestView } from '../envoy/request-view.js';
import { toObjectView } from '../envoy/object-view.js';
import type { PolicySet } from '../policy/policy-set.js';
import type { Activation } from '../cel/compile.js';
import { CheckContext, type StandIns, type TraceStep } from './context.js';
import { allow, deny, type Decision } from './decision.js';
import type { Services } from './services.js';

export interface CheckOutcome {
  readonly decision: Decision;
  /** Secret strings seen while deciding (credentials, injected values): scrubbed from logs. */
  readonly secrets: readonly string[];
  readonly trace?: readonly TraceStep[];
  readonly selectedVia?: string;
  /** The CEL variables as the Check left them: only with `trace` (explain reads values from it). */
  readonly activation?: Activation;
}

export class Authorizer {
  constructor(
    private readonly services: Services,
    private readonly currentSet: () => PolicySet | undefined,
  ) {}

  async check(view: RequestView, opts: { trace?: boolean; set?: PolicySet; standIns?: StandIns } = {}): Promise<CheckOutcome> {
    const set = opts.set ?? this.currentSet();
    if (!set) {
      return { decision: deny('', 'internal', 503, 'policies are not loaded yet'), secrets: [] };
    }
    const { checkDeadlineMs } = this.services.config;
    const controller = new AbortController();
    const ctx = new CheckContext(view, Date.now() + checkDeadlineMs, controller.signal, () => toObjectView(view), opts.trace, opts.standIns);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Decision>((resolve) => {
      timer = setTimeout(() => {
        controller.abort();
        resolve(deny('', 'internal', 503, `no decision within the ${checkDeadlineMs} ms deadline`));
      }, checkDeadlineMs);
    });
    try {
      const decision = await Promise.race([this.decide(set, ctx), deadline]);
      return { decision, secrets: ctx.secrets, trace: ctx.trace, activation: ctx.trace ? ctx.activation : undefined };
    } catch (err) {
      // A bug or an unexpected backend error: fail closed, say nothing about the input.
      this.services.logger.error({ err: { message: (err as Error).message } }, 'check failed unexpectedly');
      return { decision: deny('', 'internal', 500, 'internal error while deciding'), secrets: ctx.secrets, trace: ctx.trace };
    } finally {
      clearTimeout(timer);
    }
  }

  private async decide(set: PolicySet, ctx: CheckContext): Promise<Decision> {
    const sel = set.select(ctx.view);
    ctx.addTrace({ evaluator: 'select', name: 'policy selection', result: describeSelection(sel), durationMs: 0 });
    switch (sel.kind) {
      case 'policy':
        return sel.policy.evaluate(ctx);
      case 'global': {
        for (const p of sel.policies) {
          let applies = true;
          try {
            applies = p.applies(ctx);
          } catch {
            // A failing matchCondition is decided by the policy's failurePolicy inside evaluate().
          }
          if (!applies) continue;
          const d = await p.evaluate(ctx);
          if (d.kind === 'deny' && d.undecided) continue;
          return d;
        }
        return deny('', 'default', 403, 'no policy made a decision for this request');
      }
      case 'unknown-context':
        return deny('', 'select', 403, `unknown policy "${sel.name}" named by the route's context extension`);
      case 'none':
        if (this.services.config.defaultDecision === 'allow') return allow('', 'default', 'no policy for this host; default allow');
        return deny('', 'default', 403, `no policy governs host "${ctx.view.host}"`);
    }
  }
}

function describeSelection(sel: ReturnType<PolicySet['select']>): string {
  switch (sel.kind) {
    case 'policy':
      return `${sel.policy.name} (by ${sel.via})`;
    case 'global':
      return `global policies: ${sel.policies.map((p) => p.name).join(', ')}`;
    case 'unknown-context':
      return `unknown policy "${sel.name}"`;
    case 'none':
      return 'no policy: default rule';
  }
}
