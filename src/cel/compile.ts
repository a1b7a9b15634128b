// Parse + type-check one policy expression at load time. The request path only calls the compiled program.
import fs from 'node:fs';
import path from 'node:path';
import type { Environment } from '@marcbachmann/cel-js';
import type { SourcePos } from '../policy/diagnostics.js';
import { SourceFile, YNode } from '../policy/yaml-node.js';
import { describeTypeError, type CelCheckError } from './diagnose.js';
import { policyEnvironment } from './environment.js';

export type Activation = Record<string, unknown>;

export interface CelProgram {
  readonly source: string;
  readonly pos: SourcePos;
  /** The CEL result type found by the checker (e.g. "bool", "string", "dyn"). */
  readonly type: string;
  evaluate(activation: Activation): unknown;
}

interface CelErrorLike {
  message?: string;
  range?: { start: number; end: number };
}

/** The first line of a cel-js message (the rest is a source excerpt we render ourselves). */
function summary(err: CelErrorLike): string {
  return String(err.message ?? err).split('\n')[0]!.trim();
}

export type ExpectedType = 'bool' | 'string' | 'int' | 'any' | readonly string[];

function typeMatches(actual: string, expected: ExpectedType): boolean {
  if (expected === 'any' || actual === 'dyn' || actual.startsWith('dyn<')) return true;
  const list = typeof expected === 'string' ? [expected] : expected;
  return list.includes(actual);
}

export interface ExpressionSource {
  text: string;
  /** Maps an offset inside `text` to a position in the user's file. */
  posAt(offset: number): SourcePos;
  pos: SourcePos;
}

/**
 * Reads an expression field: a string, or `{file: name.cel}` relative to the policy file (positions then
 * point into the .cel file).
 */
export function readExpressionSource(node: YNode, what: string): ExpressionSource | undefined {
  if (node.isMap) {
    node.checkKeys(['file'], what);
    const rel = node.get('file')?.string('a .cel file name');
    if (!rel) {
      node.error(`${what}: expected an expression string or {file: NAME.cel}`);
      return undefined;
    }
    const full = path.resolve(path.dirname(node.src.file), rel);
    let text: string;
    try {
      text = fs.readFileSync(full, 'utf8');
    } catch {
      node.error(`${what}: cannot read expression file ${rel}`);
      return undefined;
    }
    const src = new SourceFile(full, text);
    src.lineCounter.addNewLine(0);
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') src.lineCounter.addNewLine(i + 1);
    return { text, posAt: (o) => src.pos(o), pos: src.pos(0) };
  }
  const text = node.string(`${what}: an expression string`);
  if (text === undefined) return undefined;
  if (text.trim() === '') {
    node.error(`${what}: empty expression`);
    return undefined;
  }
  return { text, posAt: (o) => node.valuePos(o), pos: node.pos };
}

export interface CompileResult {
  program?: CelProgram;
  error?: { pos: SourcePos; message: string };
}

export function compileExpression(
  src: ExpressionSource,
  expected: ExpectedType,
  what: string,
  env: Environment = policyEnvironment(),
): CompileResult {
  let parsed: ((ctx: Activation) => unknown) & { check?: () => unknown };
  try {
    parsed = env.parse(src.text) as typeof parsed;
  } catch (err) {
    const e = err as CelErrorLike;
    return { error: { pos: src.posAt(e.range?.start ?? 0), message: `${what}: syntax error: ${summary(e)}` } };
  }
  const checked = env.check(src.text) as { valid: boolean; type?: string; error?: CelErrorLike };
  if (!checked.valid) {
    const e = checked.error ?? {};
    const detail = describeTypeError(e as CelCheckError, src.text, env) ?? summary(e);
    return { error: { pos: src.posAt(e.range?.start ?? 0), message: `${what}: type error: ${detail}` } };
  }
  const type = checked.type ?? 'dyn';
  if (!typeMatches(type, expected)) {
    const want = typeof expected === 'string' ? expected : expected.join(' or ');
    return { error: { pos: src.pos, message: `${what}: expression must return ${want}, but returns ${type}` } };
  }
  const fn = parsed;
  return {
    program: {
      source: src.text,
      pos: src.pos,
      type,
      evaluate: (activation: Activation) => fn(activation),
    },
  };
}

/**
 * Message of a runtime CEL error, safe for denial bodies and logs. cel-js puts the offending runtime value
 * after a colon ("No such key: <key>", "Invalid duration string: <value>"), and at run time that value may be
 * a header or a credential: only the kind of error is kept. Overload errors name types, not values.
 */
export function celErrorMessage(err: unknown): string {
  const message = summary(err as CelErrorLike);
  if (/^no (matching|such) overload/i.test(message)) return message;
  const colon = message.indexOf(':');
  return colon > 0 ? message.slice(0, colon) : message;
}
