// A compiled policy: the pipeline one request runs (identity → metadata → authorization → rate limits →
// response), assembled from one or more documents that select the same requests.
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext, Stage } from '../pipeline/context.js';
import { allow, deny, type AllowDecision, type Decision } from '../pipeline/decision.js';
import { evalAll, type FailurePolicy } from '../pipeline/section.js';
import { evalVariables, type CompiledVariable } from '../pipeline/variables.js';
import type { SourcePos } from './diagnostics.js';
import { applyDenial, applySuccess, type ResponseSpec } from './response.js';

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
  readonly response: ResponseSpec;
}

function mergeAllow(base: AllowDecision, add: AllowDecision): AllowDecision {
  return {
    ...base,
    evaluator: add.evaluator,
    reason: add.reason,
    headers: [...base.headers, ...add.headers],
    headersToRemove: [...base.headersToRemove, ...add.headersToRemove],
    responseHeadersToAdd: [...base.responseHeadersToAdd, ...add.responseHeadersToAdd],
    queryParamsToSet: [...base.queryParamsToSet, ...add.queryParamsToSet],
    queryParamsToRemove: [...base.queryParamsToRemove, ...add.queryParamsToRemove],
    dynamicMetadata: add.dynamicMetadata ? { ...(base.dynamicMetadata ?? {}), ...add.dynamicMetadata } : base.dynamicMetadata,
  };
}

export class CompiledPolicy {
  readonly stages: readonly Stage[];
  readonly failurePolicy: FailurePolicy;

  constructor(
    /** Display name: the authorizing document's namespace/name. */
    readonly name: string,
    readonly parts: readonly PolicyParts[],
    readonly hosts: readonly string[],
    /** Names a context extension `policy` may use to select this policy. */
    readonly contextNames: readonly string[],
  ) {
    const first = (pick: (p: PolicyParts) => Stage | undefined) => parts.map(pick).filter((s): s is Stage => !!s);
    this.stages = [
      ...first((p) => p.identity),
      ...first((p) => p.metadata),
      ...first((p) => p.authorization),
      ...first((p) => p.rateLimit),
    ];
    this.failurePolicy = parts.some((p) => p.failurePolicy === 'Fail') ? 'Fail' : 'Ignore';
  }

  get kinds(): string[] {
    return [...new Set(this.parts.map((p) => p.kind))];
  }

  /** `when` of every part must hold for the policy to apply. */
  applies(ctx: CheckContext): boolean {
    for (const p of this.parts) if (p.when.length && !evalAll(p.when, ctx.activation)) return false;
    return true;
  }

  async evaluate(ctx: CheckContext): Promise<Decision> {
    const d = await this.run(ctx);
    if (d.kind === 'deny') {
      let out = d;
      for (const p of this.parts) out = applyDenial(out, p.response, ctx);
      return ctx.identityLabel && !out.identity ? { ...out, identity: ctx.identityLabel } : out;
    }
    return ctx.identityLabel ? { ...d, identity: ctx.identityLabel } : d;
  }

  private async run(ctx: CheckContext): Promise<Decision> {
    try {
      if (!this.applies(ctx)) return allow(this.name, 'when', 'policy conditions (when) not met: not enforced');
    } catch (err) {
      if (this.failurePolicy === 'Ignore') return allow(this.name, 'when', 'when failed; failurePolicy Ignore');
      return deny(this.name, 'when', 403, `policy condition could not be evaluated: ${celErrorMessage(err)}`);
    }
    for (const p of this.parts) {
      try {
        evalVariables(p.variables, ctx);
      } catch (err) {
        if (p.failurePolicy === 'Ignore') return allow(this.name, 'internal', 'variable failed; failurePolicy Ignore');
        return deny(this.name, 'internal', 403, `policy variable could not be evaluated: ${celErrorMessage(err)}`);
      }
    }
    let base = allow(this.name, 'authorization');
    for (const stage of this.stages) {
      const d = await stage.run(ctx);
      if (!d) continue;
      if (d.kind === 'deny') return d;
      base = mergeAllow(base, d);
    }
    for (const p of this.parts) {
      try {
        base = applySuccess(base, p.response.success, ctx);
      } catch (err) {
        if (p.failurePolicy === 'Ignore') continue;
        return deny(this.name, 'response', 403, `response could not be built: ${celErrorMessage(err)}`);
      }
    }
    return base;
  }
}
