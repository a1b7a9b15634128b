// `variables`: named CEL values computed once per Check, in order, visible as `variables.<name>`.
import type { CelProgram } from '../cel/compile.js';
import type { CheckContext } from './context.js';
import { compileField, type SectionContext } from './section.js';
import type { YNode } from '../policy/yaml-node.js';

export interface CompiledVariable {
  readonly name: string;
  readonly program: CelProgram;
}

export function compileVariables(node: YNode | undefined, sc: SectionContext): CompiledVariable[] {
  const out: CompiledVariable[] = [];
  const seen = new Set<string>();
  for (const item of node?.items('variables: a list of {name, expression}') ?? []) {
    item.checkKeys(['name', 'expression'], 'variables[]');
    const name = item.get('name')?.string('variable name');
    if (!name) {
      item.error('variables[]: name is required');
      continue;
    }
    if (seen.has(name)) item.error(`variable "${name}" is defined twice`);
    seen.add(name);
    const program = compileField(item.get('expression'), 'any', `variables "${name}"`, sc);
    if (!item.get('expression')) item.error(`variables "${name}": expression is required`);
    if (program) out.push({ name, program });
  }
  return out;
}

/** Evaluates variables in order (later ones may read earlier ones). Throws on CEL errors. */
export function evalVariables(vars: readonly CompiledVariable[], ctx: CheckContext): void {
  for (const v of vars) ctx.variables[v.name] = v.program.evaluate(ctx.activation);
}
