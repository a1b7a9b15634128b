// Clearer type-check messages than cel-js's one-liners ("No such key: methd", "no such overload:
// int == string"): name the expression the user wrote, its type, what was expected, and near misses.
import type { Environment } from '@marcbachmann/cel-js';
import { didYouMean } from '../policy/diagnostics.js';
import { CEL_VARIABLES, CelAuth, CelPeer, CelRequest } from './environment.js';

interface TypeLike {
  readonly name?: string;
  readonly kind?: string;
}

interface AstLike {
  readonly op?: string;
  readonly args?: unknown;
  readonly start?: number;
  readonly end?: number;
  readonly left?: AstLike;
  readonly right?: AstLike;
  readonly checkedType?: TypeLike;
  readonly argTypes?: readonly TypeLike[];
}

export interface CelCheckError {
  readonly code?: string;
  readonly summary?: string;
  readonly message?: string;
  readonly node?: AstLike;
}

/** Our message types' fields, read from the classes the environment registers (same names, same order). */
function fieldsOf(ctor: new (...args: never[]) => object): string[] {
  return Object.keys(Reflect.construct(ctor, []) as object);
}

let messageFields: Map<string, string[]> | undefined;
function knownFields(typeName: string): string[] | undefined {
  messageFields ??= new Map([
    ['egress.Request', fieldsOf(CelRequest)],
    ['egress.Peer', fieldsOf(CelPeer)],
    ['egress.Auth', fieldsOf(CelAuth)],
  ]);
  return messageFields.get(typeName);
}

function isAst(x: unknown): x is AstLike {
  return typeof x === 'object' && x !== null && 'op' in x;
}

/** The text the user wrote for a node (falls back to the operator name). */
function text(source: string, node: AstLike | undefined): string {
  if (!node || node.start === undefined || node.end === undefined) return '(expression)';
  return source.slice(node.start, node.end).trim();
}

function typeName(node: AstLike | undefined): string {
  return node?.checkedType?.name ?? 'dyn';
}

function quoteList(names: readonly string[], max = 12): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, ...` : shown;
}

/** Names within a small edit distance, best first (for "close names"). */
function closeNames(word: string, candidates: readonly string[]): string[] {
  const hint = didYouMean(word, candidates);
  const best = /"([^"]+)"/.exec(hint)?.[1];
  const rest = candidates.filter(
    (c) => c !== best && (c.toLowerCase().includes(word.toLowerCase()) || word.toLowerCase().includes(c.toLowerCase())),
  );
  return best ? [best, ...rest] : rest;
}

function noSuchField(source: string, node: AstLike): string | undefined {
  const args = node.args as [AstLike, unknown] | undefined;
  if (!args || !isAst(args[0])) return undefined;
  const field = typeof args[1] === 'string' ? args[1] : isAst(args[1]) && typeof args[1].args === 'string' ? args[1].args : undefined;
  if (field === undefined) return undefined;
  const owner = text(source, args[0]);
  const ownerType = typeName(args[0]);
  const fields = knownFields(ownerType);
  let msg = `field "${field}" does not exist on ${owner} (${ownerType})`;
  if (fields) {
    const close = closeNames(field, fields);
    msg += close.length
      ? `; did you mean ${close.map((c) => `"${c}"`).join(' or ')}? (fields: ${quoteList(fields, 20)})`
      : `; its fields are ${quoteList(fields, 20)}`;
  }
  return msg;
}

function unknownVariable(node: AstLike): string | undefined {
  const name = typeof node.args === 'string' ? node.args : undefined;
  if (!name) return undefined;
  const vars = Object.keys(CEL_VARIABLES);
  return `unknown variable "${name}"${didYouMean(name, vars)}; variables are ${vars.join(', ')}`;
}

const ARITHMETIC = new Set(['+', '-', '*', '/', '%']);

function binaryMismatch(source: string, node: AstLike): string | undefined {
  if (!node.left || !node.right || !node.op) return undefined;
  const l = `${text(source, node.left)} is ${typeName(node.left)}`;
  const r = `${text(source, node.right)} is ${typeName(node.right)}`;
  const op = node.op;
  if (op === 'in') return `"in" needs a list or map on the right of the same element type: ${l}, ${r}`;
  const lt = typeName(node.left);
  const rt = typeName(node.right);
  const what = ARITHMETIC.has(op) ? `cannot apply ${op} to ${lt} and ${rt}` : `cannot compare ${lt} with ${rt} using ${op}`;
  return `${what}: ${l}, ${r} (convert one side, e.g. string(x) or int(x))`;
}

interface FunctionDef {
  readonly name: string;
  readonly receiverType: string | null;
  readonly signature: string;
}

function functionDefs(env: Environment): FunctionDef[] {
  return env.getDefinitions().functions as unknown as FunctionDef[];
}

function receiverMatches(def: string | null, actual: string): boolean {
  if (!def) return false;
  if (def === actual) return true;
  const base = (t: string) => t.replace(/<.*$/, '');
  return base(def) === base(actual) || def === 'dyn';
}

function noMatchingOverload(source: string, node: AstLike, env: Environment): string | undefined {
  const args = node.args as unknown[] | undefined;
  if (!args || typeof args[0] !== 'string') return undefined;
  const fn = args[0];
  const defs = functionDefs(env);
  if (node.op === 'rcall') {
    const receiver = isAst(args[1]) ? args[1] : undefined;
    const rType = typeName(receiver);
    const onType = defs.filter((d) => receiverMatches(d.receiverType, rType));
    const same = onType.filter((d) => d.name === fn);
    const given = (node.argTypes ?? []).map((t) => t.name ?? 'dyn').join(', ');
    if (same.length) {
      return `${text(source, receiver)} (${rType}).${fn}(${given}): wrong argument types; expected ${[...new Set(same.map((d) => d.signature))].join(' or ')}`;
    }
    const names = [...new Set(onType.map((d) => d.name))].sort();
    return `${rType} has no method ${fn}()${didYouMean(fn, names)} (called on ${text(source, receiver)})`;
  }
  if (node.op === 'call') {
    const same = defs.filter((d) => !d.receiverType && d.name === fn);
    const given = (node.argTypes ?? []).map((t) => t.name ?? 'dyn').join(', ');
    if (same.length) {
      return `${fn}(${given}): wrong argument types; expected ${[...new Set(same.map((d) => d.signature))].join(' or ')}`;
    }
    const names = [...new Set(defs.filter((d) => !d.receiverType).map((d) => d.name))];
    return `unknown function ${fn}()${didYouMean(fn, names)}`;
  }
  return undefined;
}

function notBool(source: string, node: AstLike, what: string): string | undefined {
  const operands = node.op === '&&' || node.op === '||' ? [node.left, node.right] : node.op === '?:' ? [] : [node];
  const bad = operands.find((n) => n && typeName(n) !== 'bool' && typeName(n) !== 'dyn');
  if (!bad) return undefined;
  return `${what} must be bool, but ${text(source, bad)} is ${typeName(bad)}`;
}

/**
 * A clearer message for a cel-js type-check error, or undefined to keep cel-js's own. `source` is the
 * expression text the error's offsets refer to.
 */
export function describeTypeError(err: CelCheckError, source: string, env: Environment): string | undefined {
  const node = err.node;
  if (!node) return undefined;
  switch (err.code) {
    case 'no_such_key':
      return node.op === '.' || node.op === '.?' || node.op === '[]' ? noSuchField(source, node) : undefined;
    case 'unknown_variable':
      return unknownVariable(node);
    case 'no_such_overload':
      return binaryMismatch(source, node);
    case 'no_matching_overload':
      return noMatchingOverload(source, node, env);
    case 'invalid_logical_operand':
      return notBool(source, node, `each side of ${node.op}`);
    case 'invalid_condition_type':
      return notBool(source, node, 'the condition of ? :');
    case 'cannot_index_type': {
      const args = node.args as unknown[] | undefined;
      const owner = args && isAst(args[0]) ? args[0] : undefined;
      return owner ? `${text(source, owner)} is ${typeName(owner)}: it has no fields or keys to select` : undefined;
    }
    default:
      return undefined;
  }
}
