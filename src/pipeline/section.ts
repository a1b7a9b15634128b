// What a section compiler (identity, metadata, rate limits, ...) receives when a policy loads.
import type { Diagnostics } from '../policy/diagnostics.js';
import type { Services } from './services.js';
import type { YNode } from '../policy/yaml-node.js';
import { compileExpression, readExpressionSource, type CelProgram, type ExpectedType } from '../cel/compile.js';

export type FailurePolicy = 'Fail' | 'Ignore';

export interface SectionContext {
  readonly diags: Diagnostics;
  readonly services: Services;
  /** The policy's display name (namespace/name). */
  readonly policy: string;
  readonly failurePolicy: FailurePolicy;
  /**
   * Kind and name of the document (`RateLimitPolicy/ns/name`): what budgets and counters are keyed by, so
   * two documents of different kinds with one name never share a budget. Defaults to `policy`.
   */
  readonly scope?: string;
}

/** Compiles an expression field, reporting errors at its position; undefined when absent or invalid. */
export function compileField(
  node: YNode | undefined,
  expected: ExpectedType,
  what: string,
  sc: Pick<SectionContext, 'diags'>,
): CelProgram | undefined {
  if (!node || node.isNull) return undefined;
  const src = readExpressionSource(node, what);
  if (!src) return undefined;
  const r = compileExpression(src, expected, what);
  if (r.error) sc.diags.error(r.error.pos, r.error.message);
  return r.program;
}

/** Kuadrant-style `when: [{predicate: ...}, ...]` (all must hold) or a single CEL string. */
export function compileWhen(node: YNode | undefined, what: string, sc: Pick<SectionContext, 'diags'>): CelProgram[] {
  if (!node || node.isNull) return [];
  if (node.isScalar || (node.isMap && node.get('file'))) {
    const p = compileField(node, 'bool', what, sc);
    return p ? [p] : [];
  }
  const out: CelProgram[] = [];
  for (const item of node.items(`${what}: a list of {predicate: ...}`)) {
    item.checkKeys(['predicate'], what);
    const p = compileField(item.get('predicate'), 'bool', `${what}.predicate`, sc);
    if (p) out.push(p);
  }
  return out;
}

export function evalAll(programs: readonly CelProgram[], activation: Record<string, unknown>): boolean {
  for (const p of programs) if (p.evaluate(activation) !== true) return false;
  return true;
}
