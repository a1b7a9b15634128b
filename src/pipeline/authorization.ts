// `authorization`: named CEL predicates, all of which must hold. Kuadrant's patternMatching.patterns
// [{predicate}] is the same thing spelled differently.
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext, Stage } from './context.js';
import { deny, type Decision } from './decision.js';
import { compileField, compileWhen, evalAll, type SectionContext } from './section.js';
import type { YNode } from '../policy/yaml-node.js';

interface Rule {
  name: string;
  when: CelProgram[];
  predicates: CelProgram[];
  priority: number;
}

const RULE_KEYS = ['expression', 'patternMatching', 'when', 'priority', 'metrics', 'cache'];

export function compileAuthorization(node: YNode, sc: SectionContext): Stage | undefined {
  const rules: Rule[] = [];
  for (const [name, cfg] of node.entries('authorization: a map of named rules')) {
    if (cfg.isScalar) {
      // Shorthand: `rule-name: <CEL predicate>`
      const p = compileField(cfg, 'bool', `authorization "${name}"`, sc);
      if (p) rules.push({ name, when: [], predicates: [p], priority: 0 });
      continue;
    }
    cfg.checkKeys(RULE_KEYS, `authorization "${name}"`);
    const predicates: CelProgram[] = [];
    const expr = cfg.get('expression');
    if (expr) {
      const p = compileField(expr, 'bool', `authorization "${name}".expression`, sc);
      if (p) predicates.push(p);
    }
    const pm = cfg.get('patternMatching');
    if (pm) {
      pm.checkKeys(['patterns'], 'patternMatching');
      for (const pat of pm.get('patterns')?.items('patterns: a list') ?? []) {
        pat.checkKeys(['predicate', 'selector', 'operator', 'value', 'patternRef'], 'patternMatching.patterns[]');
        if (!pat.get('predicate')) {
          pat.error('patternMatching: only `predicate` (CEL) patterns are supported; selector/operator patterns are Authorino JSON paths');
          continue;
        }
        const p = compileField(pat.get('predicate'), 'bool', `authorization "${name}".predicate`, sc);
        if (p) predicates.push(p);
      }
    }
    if (!expr && !pm) cfg.error(`authorization "${name}": give an expression (or patternMatching.patterns)`);
    rules.push({
      name,
      when: compileWhen(cfg.get('when'), `authorization "${name}".when`, sc),
      predicates,
      priority: cfg.get('priority')?.number('priority') ?? 0,
    });
  }
  if (rules.length === 0) return undefined;
  rules.sort((a, b) => a.priority - b.priority);
  const { policy, failurePolicy } = sc;

  return {
    evaluator: 'authorization',
    name: 'authorization',
    run(ctx: CheckContext): Decision | undefined {
      const results = ctx.auth.authorization as Record<string, unknown>;
      for (const rule of rules) {
        const t0 = ctx.trace ? performance.now() : 0;
        let failed: CelProgram | undefined;
        // The predicate being evaluated, so an error's trace can show it (explain).
        let current: CelProgram | undefined;
        try {
          if (rule.when.length && !evalAll(rule.when, ctx.activation)) {
            if (ctx.trace) ctx.addTrace({ evaluator: 'authorization', name: rule.name, result: 'skipped (when)', durationMs: 0 });
            continue;
          }
          for (const p of rule.predicates) {
            current = p;
            if (p.evaluate(ctx.activation) !== true) {
              failed = p;
              break;
            }
          }
        } catch (err) {
          const msg = celErrorMessage(err);
          ctx.addTrace({
            evaluator: 'authorization',
            name: rule.name,
            result: `error: ${msg}`,
            durationMs: ctx.trace ? performance.now() - t0 : 0,
            expression: current?.source,
            pos: current?.pos,
          });
          if (failurePolicy === 'Ignore') continue;
          return deny(policy, 'authorization', 403, `authorization rule "${rule.name}" could not be evaluated: ${msg}`, {
            evaluationError: true,
          });
        }
        if (ctx.trace) {
          ctx.addTrace({
            evaluator: 'authorization',
            name: rule.name,
            result: failed ? 'denied' : 'allowed',
            durationMs: performance.now() - t0,
            expression: failed?.source,
            pos: failed?.pos,
          });
        }
        if (failed) return deny(policy, 'authorization', 403, `authorization rule "${rule.name}" denied the request`);
        results[rule.name] = true;
      }
      return undefined;
    },
  };
}
