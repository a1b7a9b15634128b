// A compiled policy: the pipeline one request runs (identity → metadata → authorization → rate limits →
// response), assembled from one or more documents that select the same requests.
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext, Stage } from '../pipeline/context.js';
import { allow, allowWith, deny, type AllowDecision, type Decision, type Evaluator } from '../pipeline/decision.js';
import { evalAll, type FailurePolicy } from '../pipeline/section.js';
import { evalVariables, type CompiledVariable } from '../pipeline/variables.js';
import { andThen, type MaybePromise } from '../pipeline/maybe-async.js';
import type { SourcePos } from './diagnostics.js';
import { applyDenial, applySuccess, concat, type ResponseSpec } from './response.js';

/** What one document contributes. */
export interface PolicyParts {
  readonly name: string;
  readonly kind: string;
  readonly pos: SourcePos;
  readonly failurePolicy: FailurePolicy;
  readonly when: readonly CelProgram[];
  readonly variables: readonly CompiledVariable[];
  readonly identity?: Stage;
  readonly metadata?: Stage;
  readonly authorization?: Stage;
  readonly rateLimit?: Stage;
  /**
   * What a false `when` means for this part: `skip` (Kuadrant/native: the part is not enforced for this
   * request) or `undecided` (Kyverno matchConditions: the policy has nothing to say, and with nobody else to
   * ask that gap is denied). Default `skip`.
   */
  readonly whenUnmet?: 'skip' | 'undecided';
  /** Token budgets (src/budget): after rate limits, so a request refused by a limit reserves no tokens. */
  readonly budget?: Stage;
  readonly response: ResponseSpec;
}

function mergeAllow(base: AllowDecision, add: AllowDecision): AllowDecision {
  return allowWith(base, {
    evaluator: add.evaluator,
    reason: add.reason,
    headers: concat(base.headers, add.headers),
    headersToRemove: concat(base.headersToRemove, add.headersToRemove),
    responseHeadersToAdd: concat(base.responseHeadersToAdd, add.responseHeadersToAdd),
    queryParamsToSet: concat(base.queryParamsToSet, add.queryParamsToSet),
    queryParamsToRemove: concat(base.queryParamsToRemove, add.queryParamsToRemove),
    dynamicMetadata: add.dynamicMetadata ? { ...(base.dynamicMetadata ?? {}), ...add.dynamicMetadata } : base.dynamicMetadata,
  });
}

/** Receives per-stage timings and failures: the server feeds Prometheus; lint, test and explain leave it unset. */
export interface StageObserver {
  /** A stage finished; `failed` when it threw or denied with a 5xx (backend unreachable, internal error). */
  stageDone(evaluator: Evaluator, seconds: number, failed: boolean): void;
  /** A CEL error in `when`, a variable or the success response. */
  failed(evaluator: Evaluator): void;
}

/** Runs one stage, timing it: two performance.now() calls, tens of nanoseconds next to the stage's own work. */
function runObserved(stage: Stage, ctx: CheckContext, observer: StageObserver): MaybePromise<Decision | undefined> {
  const t0 = performance.now();
  let out: MaybePromise<Decision | undefined>;
  try {
    out = stage.run(ctx);
  } catch (err) {
    observer.stageDone(stage.evaluator, (performance.now() - t0) / 1000, true);
    throw err;
  }
  if (!(out instanceof Promise)) return stageDone(stage, observer, t0, out);
  return out.then(
    (d) => stageDone(stage, observer, t0, d),
    (err: unknown) => {
      observer.stageDone(stage.evaluator, (performance.now() - t0) / 1000, true);
      throw err;
    },
  );
}

function stageDone(stage: Stage, observer: StageObserver, t0: number, d: Decision | undefined): Decision | undefined {
  observer.stageDone(stage.evaluator, (performance.now() - t0) / 1000, d?.kind === 'deny' && (d.status >= 500 || d.evaluationError === true));
  return d;
}

/** Stages of the given parts in pipeline order: every identity stage, then metadata, authorization, rate limits, token budgets. */
function stagesOf(parts: readonly PolicyParts[]): Stage[] {
  const pick = (f: (p: PolicyParts) => Stage | undefined) => parts.map(f).filter((s): s is Stage => !!s);
  return [
    ...pick((p) => p.identity),
    ...pick((p) => p.metadata),
    ...pick((p) => p.authorization),
    ...pick((p) => p.rateLimit),
    ...pick((p) => p.budget),
  ];
}

export class CompiledPolicy {
  /** Stages of all parts, in pipeline order (used as is when no part has a `when`). */
  readonly stages: readonly Stage[];
  /** Whether any part has a `when`: only then are parts filtered per request. */
  private readonly conditional: boolean;
  private observer: StageObserver | undefined;

  constructor(
    /** Display name: the authorizing document's namespace/name. */
    readonly name: string,
    readonly parts: readonly PolicyParts[],
    readonly hosts: readonly string[],
    /** Names a context extension `policy` may use to select this policy. */
    readonly contextNames: readonly string[],
  ) {
    this.stages = stagesOf(parts);
    this.conditional = parts.some((p) => p.when.length > 0);
  }

  /** Set once, before the policy's set becomes active (a reload builds new policies, so no sharing). */
  observeStages(observer: StageObserver): void {
    this.observer = observer;
  }

  get kinds(): string[] {
    return [...new Set(this.parts.map((p) => p.kind))];
  }

  /**
   * The parts whose `when` holds, or `undecided` when a part that must decide (Kyverno) does not apply. Each
   * document's `when` gates only what that document contributes: a RateLimitPolicy whose condition is false
   * skips rate limiting, it does not switch off the AuthPolicy. A `when` that fails to evaluate drops its
   * part under `failurePolicy: Ignore` and throws under `Fail` (the caller denies).
   */
  private activeParts(ctx: CheckContext): readonly PolicyParts[] | 'undecided' {
    if (!this.conditional) return this.parts;
    const active: PolicyParts[] = [];
    for (const p of this.parts) {
      let holds: boolean;
      try {
        holds = !p.when.length || evalAll(p.when, ctx.activation);
      } catch (err) {
        if (p.failurePolicy === 'Fail') throw err;
        this.observer?.failed('when');
        holds = false;
      }
      if (holds) active.push(p);
      else if (p.whenUnmet === 'undecided') return 'undecided';
    }
    return active;
  }

  /** The policy's decision: synchronous when every stage answers from cache, a promise when one must wait. */
  evaluate(ctx: CheckContext): MaybePromise<Decision> {
    return andThen(this.run(ctx), (d) => this.finish(d, ctx));
  }

  private finish(d: Decision, ctx: CheckContext): Decision {
    if (d.kind === 'deny') {
      let out = d;
      for (const p of this.parts) out = applyDenial(out, p.response, ctx);
      return ctx.identityLabel && !out.identity ? { ...out, identity: ctx.identityLabel } : out;
    }
    return ctx.identityLabel ? allowWith(d, { identity: ctx.identityLabel }) : d;
  }

  private run(ctx: CheckContext): MaybePromise<Decision> {
    const observer = this.observer;
    let parts: readonly PolicyParts[] | 'undecided';
    try {
      parts = this.activeParts(ctx);
    } catch (err) {
      observer?.failed('when');
      return deny(this.name, 'when', 403, `policy condition could not be evaluated: ${celErrorMessage(err)}`, {
        evaluationError: true,
      });
    }
    if (parts === 'undecided') {
      // Kyverno's matchConditions only say "this policy has nothing to say": the next global policy is asked;
      // with nobody left to ask, that gap is denied (the authorizer's default).
      return deny(this.name, 'kyverno', 403, `policy ${this.name} does not apply to this request (matchConditions)`, { undecided: true });
    }
    // Kuadrant/native `when` false on every part: "not enforced here" (an allow, as Kuadrant).
    if (parts.length === 0) return allow(this.name, 'when', 'policy conditions (when) not met: not enforced');
    const stages = parts === this.parts ? this.stages : stagesOf(parts);
    for (const p of parts) {
      try {
        evalVariables(p.variables, ctx);
      } catch (err) {
        observer?.failed('internal');
        if (ctx.trace) {
          // The variable that failed is the first one not yet set (explain shows it and the values it read).
          const v = p.variables.find((x) => !(x.name in ctx.variables));
          ctx.addTrace({ evaluator: 'internal', name: `variable ${v?.name ?? '?'}`, result: `error: ${celErrorMessage(err)}`, durationMs: 0, expression: v?.program.source, pos: v?.program.pos });
        }
        // Ignore leaves the variable unset: whatever reads it fails under its own failurePolicy. It never
        // allows the whole policy (other documents of the host may have their own checks to make).
        if (p.failurePolicy === 'Ignore') continue;
        return deny(this.name, 'internal', 403, `policy variable could not be evaluated: ${celErrorMessage(err)}`);
      }
    }
    return this.runStages(stages, 0, allow(this.name, 'authorization'), parts, ctx);
  }

  /** Stages from `from` on, merging allows into `base`; goes asynchronous only at a stage that must wait. */
  private runStages(
    stages: readonly Stage[],
    from: number,
    base: AllowDecision,
    parts: readonly PolicyParts[],
    ctx: CheckContext,
  ): MaybePromise<Decision> {
    const observer = this.observer;
    for (let i = from; i < stages.length; i++) {
      const stage = stages[i]!;
      // A background re-evaluation only warms the read-only stages' caches: it must not count a rate limit
      // or spend a budget for a request that was already answered.
      if (ctx.background && stage.evaluator !== 'identity' && stage.evaluator !== 'metadata') return base;
      if (ctx.standIns && ctx.useStandIn(stage)) continue;
      const out = observer ? runObserved(stage, ctx, observer) : stage.run(ctx);
      if (out instanceof Promise) {
        return out.then((d) => (d?.kind === 'deny' ? d : this.runStages(stages, i + 1, d ? mergeAllow(base, d) : base, parts, ctx)));
      }
      if (!out) continue;
      if (out.kind === 'deny') return out;
      base = mergeAllow(base, out);
    }
    return this.respond(base, parts, ctx);
  }

  /** The success response of every active part (headers to inject, to remove, ...). */
  private respond(allowed: AllowDecision, parts: readonly PolicyParts[], ctx: CheckContext): Decision {
    let base = allowed;
    for (const p of parts) {
      try {
        base = applySuccess(base, p.response.success, ctx);
      } catch (err) {
        this.observer?.failed('response');
        if (p.failurePolicy === 'Ignore') continue;
        return deny(this.name, 'response', 403, `response could not be built: ${celErrorMessage(err)}`);
      }
    }
    return base;
  }
}
