// The values an expression saw, for explain: every plain field selection in it (`request.method`,
// `auth.identity.user.username`, `request.headers["x-team"]`, `variables.team`) evaluated again against the
// Check's variables. Only selections rooted at a policy variable are read; nothing else is re-run.
import type { Activation } from '../../cel/compile.js';
import { CEL_VARIABLES, policyEnvironment } from '../../cel/environment.js';

interface Node {
  readonly op: string;
  readonly args: unknown;
  readonly start: number;
  readonly end: number;
}

export interface Selection {
  /** The selection as written, e.g. `request.headers["x-team"]`. */
  readonly text: string;
  /** The last field or key selected (`x-team`), or the variable name: decides redaction. */
  readonly lastName: string;
  /** Every field or key on the path (`request`, `headers`, `x-team`). */
  readonly path: readonly string[];
}

function isNode(x: unknown): x is Node {
  return typeof x === 'object' && x !== null && 'op' in x && 'start' in x;
}

const SELECT = new Set(['.', '.?']);
const INDEX = new Set(['[]', '[?]']);

/** The path of a plain selection, or undefined when `n` is anything else (a call, arithmetic, ...). */
function selectionPath(n: Node): string[] | undefined {
  if (n.op === 'id') return typeof n.args === 'string' ? [n.args] : undefined;
  const args = n.args as unknown[];
  if (!Array.isArray(args) || !isNode(args[0])) return undefined;
  const base = selectionPath(args[0]);
  if (!base) return undefined;
  if (SELECT.has(n.op) && typeof args[1] === 'string') return [...base, args[1]];
  if (INDEX.has(n.op) && isNode(args[1]) && args[1].op === 'value') {
    const key = args[1].args;
    if (typeof key === 'string' || typeof key === 'bigint' || typeof key === 'number') return [...base, String(key)];
  }
  return undefined;
}

function walk(x: unknown, source: string, out: Map<string, Selection>): void {
  if (Array.isArray(x)) {
    for (const y of x) walk(y, source, out);
    return;
  }
  if (!isNode(x)) return;
  const path = selectionPath(x);
  if (path && path[0]! in CEL_VARIABLES) {
    // A bare variable (`request`) is too big to be useful; its fields are what the expression read.
    if (path.length > 1) {
      const text = source.slice(x.start, x.end).trim();
      if (!out.has(text)) out.set(text, { text, lastName: path[path.length - 1]!, path });
    }
    return;
  }
  walk(x.args, source, out);
}

/** Plain selections in an expression, outermost first, each once. */
export function plainSelections(expression: string): Selection[] {
  let ast: unknown;
  try {
    ast = (policyEnvironment().parse(expression) as unknown as { ast: unknown }).ast;
  } catch {
    return [];
  }
  const out = new Map<string, Selection>();
  walk(ast, expression, out);
  return [...out.values()];
}

export type SelectionValue = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

/** Evaluates one selection against the Check's variables; a missing key is reported, not thrown. */
export function evaluateSelection(text: string, activation: Activation): SelectionValue {
  try {
    return { ok: true, value: policyEnvironment().parse(text)(activation) };
  } catch (err) {
    const msg = String((err as Error).message ?? err).split('\n')[0]!.trim();
    return { ok: false, error: /no such key/i.test(msg) ? 'absent' : `error: ${msg}` };
  }
}
