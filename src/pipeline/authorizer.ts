// One Check, end to end: RequestView → the governing policy → Decision, within the deadline, failing closed.
import { setMaxListeners } from 'node:events';
import type { RequestView } from '../envoy/request-view.js';
import { toObjectView } from '../envoy/object-view.js';
import type { PolicySet } from '../policy/policy-set.js';
import type { CompiledPolicy } from '../policy/policy.js';
import { type MaybePromise } from './maybe-async.js';
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

export interface CheckOptions {
  /** Record every step (explain). */
  readonly trace?: boolean;
  /** Decide with this set instead of the active one (policy tests, explain --policies). */
  readonly set?: PolicySet;
  readonly standIns?: StandIns;
  /**
   * When the client stops waiting (epoch ms: Envoy's `grpc-timeout`). The Check's deadline is the earlier of
   * --check-deadline and this, less a tenth of the time left (at least 5 ms), so that a 503 still reaches
   * Envoy in time: Envoy's timer started before the request left it, and a busy event loop delays the answer.
   */
  readonly clientDeadline?: number;
}

/** The least kept back from the client's deadline. */
const CLIENT_DEADLINE_MIN_MARGIN_MS = 5;

/** Background evaluations running at once (each holds one request view and its pipeline state). */
const MAX_BACKGROUND_RUNS = 1_000;
/** How many times one request is evaluated again while its backends keep answering late. */
const MAX_BACKGROUND_ROUNDS = 3;

const noop = (): void => undefined;

export class Authorizer {
  private currentBucket: DeadlineBucket | undefined;
  private backgroundRuns = 0;
  /** Abandoned loads a background evaluation already waits for (one run per load). */
  private readonly continued = new WeakSet<Promise<unknown>>();

  constructor(
    private readonly services: Services,
    private readonly currentSet: () => PolicySet | undefined,
  ) {}

  /** The outcome of one Check, as a promise (explain, the CLI and tests). The server calls `decide`. */
  async check(view: RequestView, opts: CheckOptions = {}): Promise<CheckOutcome> {
    return this.decide(view, opts);
  }

  /**
   * The outcome of one Check: returned synchronously when every stage answered from cache (the warm path
   * makes no promise and arms no timer), else a promise that settles by the deadline.
   */
  decide(view: RequestView, opts: CheckOptions = {}): MaybePromise<CheckOutcome> {
    const set = opts.set ?? this.currentSet();
    if (!set) {
      return { decision: deny('', 'internal', 503, 'policies are not loaded yet'), secrets: [] };
    }
    const bucket = this.deadlineBucket(opts.clientDeadline);
    const ctx = new CheckContext(view, bucket.deadline, bucket, toObjectView, opts.trace, opts.standIns);
    let decided: MaybePromise<Decision>;
    try {
      decided = this.decideWith(set, ctx);
    } catch (err) {
      return this.failed(ctx, err);
    }
    if (!(decided instanceof Promise)) return outcomeOf(ctx, decided);
    // Only for served Checks: explain and policy tests (traces, stand-ins) have no retry to prepare for.
    if (!opts.trace && !opts.standIns) void decided.then(() => this.finishInBackground(view, set, ctx, 1), noop);
    return bucket.race(decided).then(
      (d) => outcomeOf(ctx, d),
      (err: unknown) => this.failed(ctx, err),
    );
  }

  /**
   * Finishes a Check's work after it was answered 503 at its deadline. A stage that stops waiting for a
   * backend leaves the load running, so the answer lands in the cache; but the stages after it never started
   * (a TokenReview that came late leaves the Vault login and read undone), so Envoy's retry would meet a cold
   * cache again. Once the abandoned loads settle, the request is evaluated again in the background (identity
   * and metadata only, answer discarded) for up to MAX_BACKGROUND_ROUNDS rounds. A load that threw ends it, and
   * the TokenReview method answers a background run from its cache only: a review that failed is not asked
   * again (the workload's retry does that). Bounded: at most MAX_BACKGROUND_RUNS at a time, and one run per
   * abandoned load (1,000 Checks of one new identity make one).
   */
  private finishInBackground(view: RequestView, set: PolicySet, ctx: CheckContext, round: number): void {
    const loads = ctx.abandonedLoads;
    if (!loads || round > MAX_BACKGROUND_ROUNDS || this.backgroundRuns >= MAX_BACKGROUND_RUNS) return;
    if (loads.every((load) => this.continued.has(load))) return;
    for (const load of loads) this.continued.add(load);
    this.backgroundRuns++;
    void Promise.all(loads)
      .then(() => this.evaluateInBackground(view, set))
      .then(
        (again) => {
          this.backgroundRuns--;
          this.finishInBackground(view, set, again, round + 1);
        },
        () => {
          this.backgroundRuns--;
        },
      );
  }

  /** One background evaluation (identity and metadata stages only); resolves once its pipeline has finished. */
  private async evaluateInBackground(view: RequestView, set: PolicySet): Promise<CheckContext> {
    const bucket = this.deadlineBucket();
    const again = new CheckContext(view, bucket.deadline, bucket, toObjectView, false, undefined, true);
    const decided = this.decideWith(set, again);
    if (decided instanceof Promise) {
      // The race arms the deadline that ends the stages' waits; its 503 is nobody's answer.
      void bucket.race(decided).then(noop, noop);
      await decided.then(noop, noop);
    }
    return again;
  }

  /** A bug or an unexpected backend error: fail closed, say nothing about the input. */
  private failed(ctx: CheckContext, err: unknown): CheckOutcome {
    this.services.logger.error({ err: { message: (err as Error).message } }, 'check failed unexpectedly');
    return { decision: deny('', 'internal', 500, 'internal error while deciding'), secrets: ctx.secrets, trace: ctx.trace };
  }

  /**
   * The bucket of Checks starting in this millisecond with the same deadline (Envoy sends one timeout per
   * cluster, so its Checks of one millisecond still share one).
   */
  private deadlineBucket(clientDeadline?: number): DeadlineBucket {
    const now = Date.now();
    let budgetMs = this.services.config.checkDeadlineMs;
    if (clientDeadline !== undefined) {
      const left = clientDeadline - now;
      budgetMs = Math.max(0, Math.min(budgetMs, left - Math.max(CLIENT_DEADLINE_MIN_MARGIN_MS, left / 10)));
    }
    const current = this.currentBucket;
    if (current && current.startedAt === now && current.budgetMs === budgetMs && !current.expired) return current;
    const bucket = new DeadlineBucket(now, budgetMs, (expired) => {
      if (this.currentBucket === expired) this.currentBucket = undefined;
    });
    this.currentBucket = bucket;
    return bucket;
  }

  private decideWith(set: PolicySet, ctx: CheckContext): MaybePromise<Decision> {
    const sel = set.select(ctx.view);
    if (ctx.trace) ctx.addTrace({ evaluator: 'select', name: 'policy selection', result: describeSelection(sel), durationMs: 0 });
    switch (sel.kind) {
      case 'policy':
        return sel.policy.evaluate(ctx);
      case 'global':
        return askGlobals(sel.policies, 0, ctx);
      case 'unknown-context':
        return deny(
          '',
          'select',
          403,
          sel.ambiguous
            ? `policy name "${sel.name}" named by the route's context extension is ambiguous: use namespace/name`
            : `unknown policy "${sel.name}" named by the route's context extension`,
        );
      case 'none':
        if (this.services.config.defaultDecision === 'allow') return allow('', 'default', 'no policy for this host; default allow');
        return deny('', 'default', 403, `no policy governs host "${ctx.view.host}"`);
    }
  }
}

function outcomeOf(ctx: CheckContext, decision: Decision): CheckOutcome {
  return { decision, secrets: ctx.secrets, trace: ctx.trace, activation: ctx.trace ? ctx.activation : undefined };
}

/**
 * Global (Kyverno) policies in order: a policy whose matchConditions do not hold answers "undecided" and the
 * next one is asked; with none left, the request is denied.
 */
function askGlobals(policies: readonly CompiledPolicy[], from: number, ctx: CheckContext): MaybePromise<Decision> {
  for (let i = from; i < policies.length; i++) {
    const d = policies[i]!.evaluate(ctx);
    if (d instanceof Promise) return d.then((x) => (x.kind === 'deny' && x.undecided ? askGlobals(policies, i + 1, ctx) : x));
    if (d.kind === 'deny' && d.undecided) continue;
    return d;
  }
  return deny('', 'default', 403, 'no policy made a decision for this request');
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

/**
 * The deadline of every Check that started in one millisecond. Checks used to get an AbortController and a
 * timer each; an AbortController alone costs ~4 µs in Node 20, a noticeable share of a warm Check. Checks
 * of the same millisecond had the same deadline anyway (Date.now() + the budget), so they now share one
 * controller and one timer. The timer runs only while one of the bucket's Checks is undecided.
 */
class DeadlineBucket {
  readonly deadline: number;
  expired = false;
  /** Made on first use: a warm Check never waits on anything, and an AbortController is not free. */
  private controller: AbortController | undefined;
  /** Settle functions of the Checks not decided yet. */
  private readonly pending = new Set<(d: Decision) => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly startedAt: number,
    readonly budgetMs: number,
    private readonly onExpired: (bucket: DeadlineBucket) => void,
  ) {
    this.deadline = startedAt + budgetMs;
  }

  /** Aborted when the deadline passes (and at once if asked for after). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      // Stages of many concurrent Checks listen on this one signal: not a leak.
      setMaxListeners(0, this.controller.signal);
      if (this.expired) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** Resolves with `work`'s decision, or with a 503 when the deadline passes first. */
  race(work: Promise<Decision>): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      const settle = (d: Decision) => {
        if (!this.pending.delete(settle)) return;
        this.release();
        resolve(d);
      };
      if (this.pending.size === 0) this.timer = setTimeout(() => this.expire(), Math.max(0, this.deadline - Date.now()));
      this.pending.add(settle);
      work.then(settle, (err: unknown) => {
        if (!this.pending.delete(settle)) return;
        this.release();
        reject(err);
      });
    });
  }

  private expire(): void {
    this.timer = undefined;
    this.expired = true;
    this.onExpired(this);
    this.controller?.abort();
    for (const settle of [...this.pending]) {
      settle(deny('', 'internal', 503, `no decision within the ${this.budgetMs} ms deadline`));
    }
  }

  private release(): void {
    if (this.pending.size > 0 || this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
