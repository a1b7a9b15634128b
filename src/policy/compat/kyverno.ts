// Kyverno's Envoy policies, loaded as written:
//  - envoy.kyverno.io/v1alpha1 AuthorizationPolicy: `authorizations: [{expression}]` (first non-null response
//    decides) and its later form `deny: [{match, response}]` / `allow: [{match, response}]`, with
//    `matchConditions`, `variables`, `failurePolicy`;
//  - policies.kyverno.io/v1alpha1 ValidatingPolicy with `evaluation.mode: Envoy` and `validations`.
import type { CelProgram } from '../../cel/compile.js';
import { celErrorMessage, compileExpression, readExpressionSource } from '../../cel/compile.js';
import { rewriteNullLiterals } from '../../cel/null-literal.js';
import type { YNode } from '../yaml-node.js';
import {
  EnvoyCheckResponse,
  EnvoyDeniedHttpResponse,
  EnvoyOkHttpResponse,
} from '../../cel/envoy-library.js';
import type { CheckContext, Stage } from '../../pipeline/context.js';
import { allow, deny, type Decision } from '../../pipeline/decision.js';
import { compileField, type FailurePolicy, type SectionContext } from '../../pipeline/section.js';
import { compileVariables } from '../../pipeline/variables.js';
import type { PolicyDocument } from '../document.js';
import type { PolicyParts } from '../policy.js';

interface Rule {
  match?: CelProgram;
  response: CelProgram;
  what: string;
}

const RESPONSE_TYPES = ['envoy.CheckResponse', 'null_type', 'null'];

export function toDecision(policy: string, r: EnvoyCheckResponse): Decision {
  const md = r.metadata;
  if (r.http instanceof EnvoyOkHttpResponse) {
    const a = allow(policy, 'kyverno', r.message || 'allowed by policy');
    return {
      ...a,
      headers: r.http.headers,
      headersToRemove: r.http.headersToRemove,
      responseHeadersToAdd: r.http.responseHeadersToAdd,
      queryParamsToSet: r.http.queryParamsToSet,
      queryParamsToRemove: r.http.queryParamsToRemove,
      dynamicMetadata: md,
    };
  }
  const d = r.http as EnvoyDeniedHttpResponse;
  return deny(policy, 'kyverno', d.code, r.message || `denied by policy ${policy}`, {
    body: d.body,
    headers: d.headers,
    dynamicMetadata: md,
  });
}

/** A rule's response expression, with `null` read as `dyn(null)` (see src/cel/null-literal.ts). */
function compileRuleResponse(node: YNode, what: string, sc: Pick<SectionContext, 'diags'>): CelProgram | undefined {
  const src = readExpressionSource(node, what);
  if (!src) return undefined;
  const rw = rewriteNullLiterals(src.text);
  const r = compileExpression(
    { text: rw.text, pos: src.pos, posAt: (o) => src.posAt(rw.originalOffset(o)) },
    RESPONSE_TYPES,
    what,
  );
  if (r.error) sc.diags.error(r.error.pos, r.error.message);
  // Show the user's own text in explain output, not the rewritten one.
  return r.program ? { ...r.program, source: src.text } : undefined;
}

export function compileKyverno(doc: PolicyDocument, sc: SectionContext): { parts: PolicyParts; global: boolean } {
  const spec = doc.spec;
  const isVpol = doc.kind === 'KyvernoValidatingPolicy';
  spec.checkKeys(
    isVpol
      ? ['evaluation', 'failurePolicy', 'matchConditions', 'variables', 'validations', 'validationActions', 'webhookConfiguration']
      : ['failurePolicy', 'matchConditions', 'variables', 'authorizations', 'deny', 'allow'],
    `${doc.kind === 'KyvernoValidatingPolicy' ? 'ValidatingPolicy' : 'AuthorizationPolicy'}.spec`,
  );
  const fpNode = spec.get('failurePolicy');
  const fp = fpNode?.string('Fail or Ignore') ?? 'Fail';
  if (fp !== 'Fail' && fp !== 'Ignore') fpNode?.error('failurePolicy must be Fail or Ignore');
  const failurePolicy: FailurePolicy = fp === 'Ignore' ? 'Ignore' : 'Fail';
  const scx = { ...sc, failurePolicy };

  const matchConditions: CelProgram[] = [];
  for (const mc of spec.get('matchConditions')?.items('matchConditions: a list') ?? []) {
    mc.checkKeys(['name', 'expression'], 'matchConditions[]');
    const p = compileField(mc.get('expression'), 'bool', `matchConditions "${mc.get('name')?.string() ?? ''}"`, scx);
    if (p) matchConditions.push(p);
  }
  const rules: Rule[] = [];
  const readRules = (key: string, withMatch: boolean) => {
    spec.get(key)?.items(`${key}: a list`).forEach((item, i) => {
      item.checkKeys(withMatch ? ['match', 'response'] : ['expression', 'name', 'message'], `${key}[${i}]`);
      const match = withMatch ? compileField(item.get('match'), 'bool', `${key}[${i}].match`, scx) : undefined;
      const respNode = withMatch ? item.get('response') : item.get('expression');
      if (!respNode) {
        item.error(`${key}[${i}]: ${withMatch ? 'response' : 'expression'} is required`);
        return;
      }
      const response = compileRuleResponse(respNode, `${key}[${i}]`, scx);
      if (response) rules.push({ match, response, what: `${key}[${i}]` });
    });
  };
  if (isVpol) {
    const mode = spec.get('evaluation')?.get('mode')?.string('evaluation.mode');
    if (mode !== 'Envoy') (spec.get('evaluation') ?? spec).error('ValidatingPolicy: evaluation.mode must be Envoy for egress-authz');
    readRules('validations', false);
  } else {
    readRules('deny', true);
    readRules('allow', true);
    readRules('authorizations', false);
  }
  if (rules.length === 0) spec.error('policy has no rules (authorizations, deny/allow or validations)');

  const policy = sc.policy;
  const stage: Stage = {
    evaluator: 'kyverno',
    name: doc.name,
    run(ctx: CheckContext): Decision | undefined {
      for (const rule of rules) {
        const t0 = ctx.trace ? performance.now() : 0;
        try {
          if (rule.match && rule.match.evaluate(ctx.activation) !== true) continue;
          const r = rule.response.evaluate(ctx.activation);
          if (ctx.trace) {
            ctx.addTrace({
              evaluator: 'kyverno',
              name: rule.what,
              result: r instanceof EnvoyCheckResponse ? (r.http instanceof EnvoyOkHttpResponse ? 'allowed' : 'denied') : 'no decision',
              durationMs: performance.now() - t0,
              expression: rule.response.source,
              pos: rule.response.pos,
            });
          }
          if (r instanceof EnvoyCheckResponse) return toDecision(policy, r);
        } catch (err) {
          ctx.addTrace({ evaluator: 'kyverno', name: rule.what, result: `error: ${celErrorMessage(err)}`, durationMs: 0 });
          if (failurePolicy === 'Ignore') return allow(policy, 'kyverno', 'evaluation failed; failurePolicy Ignore');
          return deny(policy, 'kyverno', 403, `policy evaluation failed in ${rule.what}: ${celErrorMessage(err)}`, { evaluationError: true });
        }
      }
      // No rule decided: Kyverno would allow; we fail closed.
      return deny(policy, 'kyverno', 403, `no rule of policy ${policy} made a decision`, { undecided: true });
    },
  };
  const parts: PolicyParts = {
    name: policy,
    kind: doc.kind,
    pos: doc.root.pos,
    failurePolicy,
    when: matchConditions,
    variables: compileVariables(spec.get('variables'), scx),
    authorization: stage,
    response: { denials: {} },
    whenUnmet: 'undecided',
  };
  return { parts, global: true };
}
