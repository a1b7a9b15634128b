// The metadata stage: sources in priority order (lower first); sources of equal priority run concurrently.
// A source's value lands at auth.metadata.<name> before the next priority runs, so later sources (and the
// authorization and response sections) can read it. A source that denies (its backend is down → 503, Vault
// refused → 403) ends the Check; an absent result only leaves its key unset.
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext, Stage } from '../pipeline/context.js';
import { deny, type Decision } from '../pipeline/decision.js';
import { evalAll } from '../pipeline/section.js';
import { scrubSecrets } from '../observability/decision-log.js';
import type { Logger } from 'pino';
import type { MetadataSource, SourceOutcome } from './source.js';
import type { MaybePromise } from '../pipeline/maybe-async.js';

function runSource(source: MetadataSource, ctx: CheckContext): MaybePromise<SourceOutcome | undefined> {
  try {
    if (source.when.length && !evalAll(source.when, ctx.activation)) return undefined;
  } catch (err) {
    return { kind: 'absent', reason: `when could not be evaluated: ${celErrorMessage(err)}` };
  }
  return source.fetch(ctx);
}

/** Groups sources by priority, lowest first, keeping declaration order inside a group. */
export function priorityGroups(sources: readonly MetadataSource[]): MetadataSource[][] {
  const byPriority = new Map<number, MetadataSource[]>();
  for (const s of sources) byPriority.set(s.priority, [...(byPriority.get(s.priority) ?? []), s]);
  return [...byPriority.entries()].sort(([a], [b]) => a - b).map(([, group]) => group);
}

export function metadataStage(policy: string, sources: readonly MetadataSource[], logger: Logger): Stage {
  const groups = priorityGroups(sources);
  /** Stores a group's outcomes at auth.metadata.<name>; the group's denial, if any. */
  function settle(group: readonly MetadataSource[], outcomes: readonly (SourceOutcome | undefined)[], ctx: CheckContext, t0: number): Decision | undefined {
    let denial: { status: number; reason: string } | undefined;
    group.forEach((source, i) => {
      const out = outcomes[i];
      if (ctx.trace) {
        ctx.addTrace({
          evaluator: 'metadata',
          name: `${source.name} (${source.kind})`,
          result: !out ? 'skipped (when)' : out.kind === 'ok' ? 'ok' : out.kind === 'absent' ? `absent: ${out.reason}` : `deny ${out.status}: ${out.reason}`,
          durationMs: performance.now() - t0,
        });
      }
      if (!out) return;
      if (out.kind === 'ok') ctx.auth.metadata[source.name] = out.value;
      else if (out.kind === 'absent') {
        // Reasons hold status codes and CEL messages (which name keys, not values); scrubbed all the same.
        logger.debug({ policy, source: source.name, kind: source.kind, reason: scrubSecrets(out.reason, ctx.secrets) }, 'metadata source gave no value');
      } else {
        // The first denial in declaration order decides; 503 (backend trouble) is kept over 403.
        if (!denial || (out.status === 503 && denial.status !== 503)) denial = out;
      }
    });
    return denial ? deny(policy, 'metadata', denial.status, denial.reason) : undefined;
  }

  /** Priority groups from `from` on; synchronous while every source answers from its cache. */
  function runGroups(ctx: CheckContext, from: number): MaybePromise<Decision | undefined> {
    for (let g = from; g < groups.length; g++) {
      const group = groups[g]!;
      const t0 = ctx.trace ? performance.now() : 0;
      const outcomes = group.map((s) => runSource(s, ctx));
      if (outcomes.some((o) => o instanceof Promise)) {
        return Promise.all(outcomes).then((ready) => settle(group, ready, ctx, t0) ?? runGroups(ctx, g + 1));
      }
      const denial = settle(group, outcomes as (SourceOutcome | undefined)[], ctx, t0);
      if (denial) return denial;
    }
    return undefined;
  }

  return {
    evaluator: 'metadata',
    name: 'metadata',
    run: (ctx: CheckContext) => runGroups(ctx, 0),
  };
}
