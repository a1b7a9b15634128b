/**
 * Runs the official cel-spec conformance tests (shipped in @bufbuild/cel-spec) through an
 * Environment built the way egress-authz builds its own, and prints per-file figures.
 *
 *   npx tsx scripts/conformance.ts             our environment (library + registerExtensions)
 *   npx tsx scripts/conformance.ts --baseline  the bare library (no registerExtensions)
 *   npx tsx scripts/conformance.ts --both      both, side by side
 *   options: --file NAME (repeatable)  --failures (list every failing case with its reason)
 *
 * Scoring rules (kept strict so the figures mean something):
 * - a `value` expectation passes only if evaluation returns a value equal to it (CEL types are
 *   respected: int is a bigint, uint an UnsignedInt, double a number, bytes a Uint8Array ...);
 * - an expectation without a result matcher means "evaluates to true" (the cel-spec rule);
 * - an `evalError` expectation passes if type-checking or evaluation raises an error (the
 *   message is implementation-specific and not compared); a ParseError never counts, because
 *   it means the library could not read the expression at all;
 * - a case whose bindings or declarations cannot be represented in cel-js fails.
 */
import { pathToFileURL } from 'node:url';
import { Environment, EvaluationError, ParseError, TypeError as CelTypeError } from '@marcbachmann/cel-js';
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';
import { getConformanceSuite, type IncrementalTest, type IncrementalTestSuite } from '@bufbuild/cel-spec/testdata/tests.js';
import type { Value } from '@bufbuild/cel-spec/cel/expr/value_pb.js';
import type { Type as SpecType } from '@bufbuild/cel-spec/cel/expr/checked_pb.js';
import { anyIs, anyUnpack, DurationSchema, TimestampSchema, type Any } from '@bufbuild/protobuf/wkt';
import { registerExtensions } from '../src/cel/extensions/index.js';

/** The conformance files this project tracks. */
export const CONFORMANCE_FILES = ['string_ext', 'optionals', 'basic', 'macros', 'string', 'timestamps'] as const;

export type Mode = 'extended' | 'baseline';

export interface CaseOutcome {
  readonly file: string;
  readonly section: string;
  readonly name: string;
  readonly expr: string;
  readonly passed: boolean;
  /** Why the case failed (empty when it passed). */
  readonly reason: string;
}

export interface FileFigures {
  readonly file: string;
  readonly passed: number;
  readonly failed: number;
  readonly total: number;
}

/** Thrown when a test's bindings or declarations have no cel-js representation. */
class Unrepresentable extends Error {}

const PRIMITIVE_TYPE_NAMES: Record<number, string> = {
  1: 'bool',
  2: 'int',
  3: 'uint',
  4: 'double',
  5: 'string',
  6: 'bytes',
};

const WELL_KNOWN_TYPE_NAMES: Record<number, string> = {
  1: 'dyn',
  2: 'google.protobuf.Timestamp',
  3: 'google.protobuf.Duration',
};

function celTypeName(type: SpecType | undefined): string {
  const kind = type?.typeKind;
  switch (kind?.case) {
    case 'primitive':
      return PRIMITIVE_TYPE_NAMES[kind.value] ?? unrepresentable(`primitive type ${kind.value}`);
    case 'wellKnown':
      return WELL_KNOWN_TYPE_NAMES[kind.value] ?? unrepresentable(`well-known type ${kind.value}`);
    case 'wrapper':
      // Wrappers are nullable primitives; cel-js has no such type, dyn is the closest honest fit.
      return 'dyn';
    case 'dyn':
      return 'dyn';
    case 'null':
      return 'null';
    case 'listType':
      return `list<${celTypeName(kind.value.elemType)}>`;
    case 'mapType':
      return `map<${celTypeName(kind.value.keyType)}, ${celTypeName(kind.value.valueType)}>`;
    case 'messageType':
      if (kind.value === 'google.protobuf.Duration' || kind.value === 'google.protobuf.Timestamp') return kind.value;
      return unrepresentable(`message type ${kind.value}`);
    default:
      return unrepresentable(`type kind ${kind?.case ?? 'unset'}`);
  }
}

function unrepresentable(what: string): never {
  throw new Unrepresentable(`no cel-js representation for ${what}`);
}

function unpackObject(any: Any): unknown {
  if (anyIs(any, DurationSchema)) {
    const duration = anyUnpack(any, DurationSchema);
    if (!duration) return unrepresentable('a Duration Any');
    return new Duration(duration.seconds, duration.nanos);
  }
  if (anyIs(any, TimestampSchema)) {
    const timestamp = anyUnpack(any, TimestampSchema);
    if (!timestamp) return unrepresentable('a Timestamp Any');
    // cel-js timestamps are JS Dates (millisecond precision).
    if (timestamp.nanos % 1_000_000 !== 0) return unrepresentable('a sub-millisecond timestamp');
    return new Date(Number(timestamp.seconds) * 1000 + timestamp.nanos / 1_000_000);
  }
  return unrepresentable(`object ${any.typeUrl}`);
}

/** Converts a cel-spec Value into the JS value cel-js expects for a binding. */
function toJs(value: Value | undefined): unknown {
  const kind = value?.kind;
  switch (kind?.case) {
    case 'nullValue':
      return null;
    case 'boolValue':
    case 'stringValue':
    case 'doubleValue':
      return kind.value;
    case 'int64Value':
      return BigInt(kind.value);
    case 'uint64Value':
      return new UnsignedInt(kind.value);
    case 'bytesValue':
      return new Uint8Array(kind.value);
    case 'enumValue':
      return BigInt(kind.value.value);
    case 'listValue':
      return kind.value.values.map(toJs);
    case 'mapValue': {
      const entries = kind.value.entries.map((entry) => [toJs(entry.key), toJs(entry.value)] as const);
      if (entries.every(([key]) => typeof key === 'string')) return Object.fromEntries(entries);
      return new Map(entries);
    }
    case 'objectValue':
      return unpackObject(kind.value);
    default:
      return unrepresentable(`value kind ${kind?.case ?? 'unset'}`);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Equality of a map key given by the spec and a key found in a cel-js result. */
function keyEquals(expected: unknown, actual: unknown): boolean {
  if (expected instanceof UnsignedInt) return actual instanceof UnsignedInt && actual.value === expected.value;
  return expected === actual;
}

function typeNameOf(actual: unknown): string | undefined {
  if (typeof actual !== 'object' || actual === null || actual.constructor?.name !== 'Type') return undefined;
  const name: unknown = (actual as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

/** Whether a cel-js result equals the spec's expected Value, respecting CEL types. */
function valueMatches(expected: Value, actual: unknown): boolean {
  const kind = expected.kind;
  switch (kind.case) {
    case 'nullValue':
      return actual === null;
    case 'boolValue':
    case 'stringValue':
      return actual === kind.value;
    case 'doubleValue':
      return typeof actual === 'number' && (actual === kind.value || (Number.isNaN(actual) && Number.isNaN(kind.value)));
    case 'int64Value':
      return typeof actual === 'bigint' && actual === kind.value;
    case 'uint64Value':
      return actual instanceof UnsignedInt && actual.value === kind.value;
    case 'bytesValue':
      return actual instanceof Uint8Array && bytesEqual(actual, kind.value);
    case 'typeValue': {
      const name = typeNameOf(actual);
      // cel-js names the null type 'null'; its CEL identifier is null_type.
      return name === kind.value || (kind.value === 'null_type' && name === 'null');
    }
    case 'listValue': {
      const list = actual instanceof Set ? [...actual] : actual;
      if (!Array.isArray(list) || list.length !== kind.value.values.length) return false;
      return kind.value.values.every((element, i) => valueMatches(element, list[i]));
    }
    case 'mapValue': {
      const actualEntries: Array<[unknown, unknown]> =
        actual instanceof Map
          ? [...actual.entries()]
          : typeof actual === 'object' && actual !== null && actual.constructor === Object
            ? Object.entries(actual)
            : [];
      if (!(actual instanceof Map) && actualEntries.length === 0 && !(typeof actual === 'object' && actual?.constructor === Object)) {
        return false;
      }
      if (actualEntries.length !== kind.value.entries.length) return false;
      return kind.value.entries.every((entry) => {
        const key = toJs(entry.key);
        const found = actualEntries.find(([actualKey]) => keyEquals(key, actualKey));
        return found !== undefined && entry.value !== undefined && valueMatches(entry.value, found[1]);
      });
    }
    case 'objectValue': {
      const object = unpackObject(kind.value);
      if (object instanceof Duration) {
        return actual instanceof Duration && actual.seconds === object.seconds && actual.nanos === object.nanos;
      }
      if (object instanceof Date) return actual instanceof Date && actual.getTime() === object.getTime();
      return false;
    }
    default:
      return false;
  }
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return `${v}n`;
      if (v instanceof UnsignedInt) return `${v.value}u`;
      if (v instanceof Uint8Array) return `b[${[...v].join(',')}]`;
      if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), x]));
      if (v instanceof Duration) return `duration(${v.toString()})`;
      if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
      const typeName = typeNameOf(v);
      if (typeName !== undefined) return `type(${typeName})`;
      return v;
    });
  } catch {
    return String(value);
  }
}

function createEnvironment(mode: Mode): Environment {
  // The same options src/cel/environment.ts uses for egress-authz's shared environment.
  const env = new Environment({ enableOptionalTypes: true, homogeneousAggregateLiterals: false });
  return mode === 'extended' ? registerExtensions(env) : env;
}

function runCase(mode: Mode, file: string, section: string, test: IncrementalTest): CaseOutcome {
  const original = test.original;
  const base = { file, section, name: test.name, expr: original.expr };
  const fail = (reason: string): CaseOutcome => ({ ...base, passed: false, reason });
  const pass = (): CaseOutcome => ({ ...base, passed: true, reason: '' });

  let env: Environment;
  const context: Record<string, unknown> = {};
  try {
    env = createEnvironment(mode);
    for (const decl of original.typeEnv) {
      if (decl.declKind.case !== 'ident') return fail(`unsupported declaration of function ${decl.name}`);
      env.registerVariable(decl.name, celTypeName(decl.declKind.value.type));
    }
    for (const [name, binding] of Object.entries(original.bindings)) {
      if (binding.kind.case !== 'value') return fail(`unsupported binding kind ${binding.kind.case ?? 'unset'}`);
      context[name] = toJs(binding.kind.value);
    }
  } catch (error) {
    return fail(`setup: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }

  const matcher = original.resultMatcher;
  let result: unknown;
  try {
    if (original.checkOnly) {
      const checked = env.check(original.expr);
      if (!checked.valid) throw checked.error ?? new Error('check failed');
      return fail('checkOnly cases are not scored');
    }
    result = env.evaluate(original.expr, context);
    if (result instanceof Promise) return fail('evaluation returned a Promise');
  } catch (error) {
    const firstLine = error instanceof Error ? error.message.split('\n')[0] : String(error);
    if (error instanceof ParseError) return fail(`parse error: ${firstLine}`);
    const isCelError = error instanceof EvaluationError || error instanceof CelTypeError;
    if (isCelError && (matcher.case === 'evalError' || matcher.case === 'anyEvalErrors')) return pass();
    return fail(`${isCelError ? 'error' : 'crash'}: ${firstLine}`);
  }

  switch (matcher.case) {
    case undefined:
      return result === true ? pass() : fail(`expected true, got ${describe(result)}`);
    case 'value':
      return valueMatches(matcher.value, result) ? pass() : fail(`got ${describe(result)}`);
    case 'typedResult':
      if (matcher.value.result === undefined) return fail('typedResult without a result');
      return valueMatches(matcher.value.result, result) ? pass() : fail(`got ${describe(result)}`);
    case 'evalError':
    case 'anyEvalErrors':
      return fail(`expected an error, got ${describe(result)}`);
    default:
      return fail(`unsupported result matcher ${matcher.case}`);
  }
}

function collectCases(suite: IncrementalTestSuite, section: string, into: Array<[string, IncrementalTest]>): void {
  for (const test of suite.tests) into.push([section, test]);
  for (const child of suite.suites) collectCases(child, child.name, into);
}

export function runConformance(mode: Mode, files: readonly string[]): CaseOutcome[] {
  const root = getConformanceSuite();
  const outcomes: CaseOutcome[] = [];
  for (const file of files) {
    const suite = root.suites.find((s) => s.name === file);
    if (!suite) throw new Error(`conformance file ${file} is not in @bufbuild/cel-spec`);
    const cases: Array<[string, IncrementalTest]> = [];
    collectCases(suite, file, cases);
    for (const [section, test] of cases) outcomes.push(runCase(mode, file, section, test));
  }
  return outcomes;
}

export function summarize(outcomes: readonly CaseOutcome[], files: readonly string[]): FileFigures[] {
  const figures = files.map((file) => {
    const ofFile = outcomes.filter((o) => o.file === file);
    const passed = ofFile.filter((o) => o.passed).length;
    return { file, passed, failed: ofFile.length - passed, total: ofFile.length };
  });
  const passed = figures.reduce((sum, f) => sum + f.passed, 0);
  const total = figures.reduce((sum, f) => sum + f.total, 0);
  return [...figures, { file: 'all', passed, failed: total - passed, total }];
}

function printTable(title: string, figures: readonly FileFigures[]): void {
  console.log(`\n${title}`);
  console.log(`${'file'.padEnd(12)} ${'passed'.padStart(7)} ${'failed'.padStart(7)} ${'total'.padStart(7)}`);
  for (const f of figures) {
    console.log(`${f.file.padEnd(12)} ${String(f.passed).padStart(7)} ${String(f.failed).padStart(7)} ${String(f.total).padStart(7)}`);
  }
}

function printComparison(baseline: readonly FileFigures[], extended: readonly FileFigures[]): void {
  console.log('\nbare library vs egress-authz environment (passed of total)');
  console.log(`${'file'.padEnd(12)} ${'baseline'.padStart(10)} ${'extended'.padStart(10)} ${'total'.padStart(7)}`);
  for (const [i, b] of baseline.entries()) {
    const e = extended[i];
    if (!e) continue;
    console.log(`${b.file.padEnd(12)} ${String(b.passed).padStart(10)} ${String(e.passed).padStart(10)} ${String(b.total).padStart(7)}`);
  }
}

function printFailures(outcomes: readonly CaseOutcome[]): void {
  for (const o of outcomes) {
    if (o.passed) continue;
    console.log(`FAIL ${o.file}/${o.section}/${o.name}: ${o.expr.replace(/\s+/g, ' ')}\n     ${o.reason}`);
  }
}

function main(argv: readonly string[]): void {
  const files: string[] = [];
  for (const [i, arg] of argv.entries()) {
    if (arg === '--file') {
      const name = argv[i + 1];
      if (!name) throw new Error('--file needs a name');
      files.push(name);
    }
  }
  const selected = files.length > 0 ? files : [...CONFORMANCE_FILES];
  const showFailures = argv.includes('--failures');
  const modes: Mode[] = argv.includes('--both') ? ['baseline', 'extended'] : argv.includes('--baseline') ? ['baseline'] : ['extended'];

  const results = new Map<Mode, FileFigures[]>();
  for (const mode of modes) {
    const outcomes = runConformance(mode, selected);
    if (showFailures) printFailures(outcomes);
    const figures = summarize(outcomes, selected);
    results.set(mode, figures);
    printTable(mode === 'baseline' ? 'bare @marcbachmann/cel-js (--baseline)' : 'egress-authz environment (with registerExtensions)', figures);
  }
  const baseline = results.get('baseline');
  const extended = results.get('extended');
  if (baseline && extended) printComparison(baseline, extended);
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(invokedPath).href) main(process.argv.slice(2));
