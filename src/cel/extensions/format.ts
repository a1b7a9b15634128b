/**
 * `string.format(list)` with cel-go's formatting semantics (ext.Strings, the "v2" formatter):
 * %s %d %f %e %b %o %x %X and %%, an optional `.N` precision for %f and %e (default 6).
 *
 * Numbers are rounded the way Go's fmt does: from the exact binary value of the double, with
 * ties to even, so "%.0f" of 2.5 is "2" (JavaScript's toFixed would give "3").
 */
import { EvaluationError } from '@marcbachmann/cel-js';
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';
import { celMapEntries, celTypeOf, celTypeValueName, isCelMap, isCelTypeValue } from './values.js';

const DEFAULT_PRECISION = 6;
/** Keeps a template from asking for megabytes of digits. */
const MAX_PRECISION = 100;

class FormatClauseError extends Error {}

function formatError(message: string): EvaluationError {
  return new EvaluationError(message);
}

/** Sign, mantissa and exponent of a finite double: |value| = mantissa * 2^exponent exactly. */
function exactBinary(value: number): { negative: boolean; mantissa: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biasedExponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  if (biasedExponent === 0) return { negative, mantissa: fraction, exponent: -1074 };
  return { negative, mantissa: fraction | (1n << 52n), exponent: biasedExponent - 1075 };
}

/** round(numerator / denominator) with ties to even; both positive. */
function divideRoundHalfEven(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  const twiceRemainder = (numerator % denominator) * 2n;
  if (twiceRemainder > denominator) return quotient + 1n;
  if (twiceRemainder === denominator && quotient % 2n === 1n) return quotient + 1n;
  return quotient;
}

/** round(|value| * 10^power) exactly, ties to even. */
function scaledRound(mantissa: bigint, exponent: number, power: number): bigint {
  let numerator = mantissa;
  let denominator = 1n;
  if (exponent >= 0) numerator <<= BigInt(exponent);
  else denominator <<= BigInt(-exponent);
  if (power >= 0) numerator *= 10n ** BigInt(power);
  else denominator *= 10n ** BigInt(-power);
  return divideRoundHalfEven(numerator, denominator);
}

/** Go's %.Nf for a finite double. */
export function formatFixed(value: number, precision: number): string {
  const { negative, mantissa, exponent } = exactBinary(value);
  const digits = scaledRound(mantissa, exponent, precision).toString().padStart(precision + 1, '0');
  const whole = digits.slice(0, digits.length - precision);
  const fraction = digits.slice(digits.length - precision);
  return `${negative ? '-' : ''}${whole}${precision > 0 ? `.${fraction}` : ''}`;
}

/** Go's %.Ne for a finite double: d.ddddde±XX with at least two exponent digits. */
export function formatScientific(value: number, precision: number): string {
  const { negative, mantissa, exponent } = exactBinary(value);
  const sign = negative ? '-' : '';
  if (mantissa === 0n) return `${sign}0${precision > 0 ? `.${'0'.repeat(precision)}` : ''}e+00`;

  let decimalExponent = Math.floor(Math.log10(Math.abs(value)));
  const lower = 10n ** BigInt(precision);
  const upper = lower * 10n;
  let digits = scaledRound(mantissa, exponent, precision - decimalExponent);
  // log10 can be off by one near powers of ten, and rounding can carry into a new digit.
  while (digits >= upper || digits < lower) {
    decimalExponent += digits >= upper ? 1 : -1;
    digits = scaledRound(mantissa, exponent, precision - decimalExponent);
  }
  const text = digits.toString();
  const magnitude = Math.abs(decimalExponent).toString().padStart(2, '0');
  return `${sign}${text[0]}${precision > 0 ? `.${text.slice(1)}` : ''}e${decimalExponent < 0 ? '-' : '+'}${magnitude}`;
}

/** Go's strconv.FormatFloat(value, 'f', -1, 64): the shortest round-trip digits, never an exponent. */
export function formatShortestFixed(value: number): string {
  if (Object.is(value, -0)) return '-0';
  const [mantissa = '0', exponentText = '0'] = value.toExponential().split('e');
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const pointAt = Number(exponentText) + 1;
  let text: string;
  if (pointAt <= 0) text = `0.${'0'.repeat(-pointAt)}${digits}`;
  else if (pointAt >= digits.length) text = digits + '0'.repeat(pointAt - digits.length);
  else text = `${digits.slice(0, pointAt)}.${digits.slice(pointAt)}`;
  return negative ? `-${text}` : text;
}

function specialDouble(value: number): string | undefined {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  return undefined;
}

/** RFC 3339 with the fraction trimmed of trailing zeros (Go's time.RFC3339Nano), in UTC. Also string(timestamp). */
export function formatTimestamp(value: Date): string {
  return value.toISOString().replace(/\.(\d*?)0*Z$/, (_match, kept: string) => (kept ? `.${kept}Z` : 'Z'));
}

/** Seconds with the shortest fraction and an "s", as cel-go prints durations. Also string(duration). */
export function formatDuration(value: Duration): string {
  return `${formatShortestFixed(Number(value.seconds) + value.nanos / 1e9)}s`;
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

const utf8 = new TextDecoder('utf-8');

/** The %s rendering of any CEL value (lists and maps recursively; maps sorted by rendered key). */
export function formatValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'number':
      return specialDouble(value) ?? formatShortestFixed(value);
    default:
      break;
  }
  if (value === null) return 'null';
  if (value instanceof UnsignedInt) return value.value.toString();
  if (value instanceof Uint8Array) return utf8.decode(value);
  if (value instanceof Date) return formatTimestamp(value);
  if (value instanceof Duration) return formatDuration(value);
  if (isCelTypeValue(value)) return celTypeValueName(value);
  if (Array.isArray(value) || value instanceof Set) return `[${[...value].map(formatValue).join(', ')}]`;
  if (isCelMap(value)) {
    const entries = celMapEntries(value).map(([key, entry]) => [formatValue(key), formatValue(entry)] as const);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, entry]) => `${key}: ${entry}`).join(', ')}}`;
  }
  throw new FormatClauseError(
    `string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, durations, and timestamps, was given ${celTypeOf(value)}`,
  );
}

/** A number the %f and %e clauses accept (ints and uints are converted to double, as in Go). */
function asDouble(value: unknown, clause: string): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof UnsignedInt) return Number(value.value);
  throw new FormatClauseError(`${clause} clause can only be used on ints, uints, and doubles, was given ${celTypeOf(value)}`);
}

/** An integer for the %b %o %x clauses, or undefined when the value is no integer. */
function asInteger(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (value instanceof UnsignedInt) return value.value;
  return undefined;
}

function formatClause(verb: string, precision: number, value: unknown): string {
  switch (verb) {
    case 's':
      return formatValue(value);
    case 'd': {
      const integer = asInteger(value);
      if (integer !== undefined) return integer.toString();
      if (typeof value === 'number') return specialDouble(value) ?? formatShortestFixed(value);
      throw new FormatClauseError(`decimal clause can only be used on ints, uints, and doubles, was given ${celTypeOf(value)}`);
    }
    case 'f': {
      const double = asDouble(value, 'fixed-point');
      return specialDouble(double) ?? formatFixed(double, precision);
    }
    case 'e': {
      const double = asDouble(value, 'scientific');
      return specialDouble(double) ?? formatScientific(double, precision);
    }
    case 'b': {
      if (typeof value === 'boolean') return value ? '1' : '0';
      const integer = asInteger(value);
      if (integer !== undefined) return integer.toString(2);
      throw new FormatClauseError(`only ints, uints, and bools can be formatted as binary, was given ${celTypeOf(value)}`);
    }
    case 'o': {
      const integer = asInteger(value);
      if (integer !== undefined) return integer.toString(8);
      throw new FormatClauseError(`octal clause can only be used on ints and uints, was given ${celTypeOf(value)}`);
    }
    case 'x':
    case 'X': {
      const integer = asInteger(value);
      let hex: string;
      if (integer !== undefined) hex = integer.toString(16);
      else if (typeof value === 'string') hex = Buffer.from(value, 'utf8').toString('hex');
      else if (value instanceof Uint8Array) hex = toHex(value);
      else throw new FormatClauseError(`only ints, uints, bytes, and strings can be formatted as hex, was given ${celTypeOf(value)}`);
      return verb === 'X' ? hex.toUpperCase() : hex;
    }
    default:
      throw new Error(`unreachable verb ${verb}`);
  }
}

const VERBS = new Set(['s', 'd', 'f', 'e', 'b', 'o', 'x', 'X']);

/** Parses `.N` at `start`; returns the precision and the index after it. */
function parsePrecision(template: string, start: number): { precision: number; next: number } {
  if (template[start] !== '.') return { precision: DEFAULT_PRECISION, next: start };
  let next = start + 1;
  while (next < template.length && /[0-9]/.test(template[next] ?? '')) next++;
  if (next >= template.length) throw formatError('could not parse formatting clause: error while parsing precision: could not find end of precision specifier');
  const digits = template.slice(start + 1, next);
  if (digits === '') throw formatError('could not parse formatting clause: error while parsing precision: missing precision digits');
  const precision = Number(digits);
  if (precision > MAX_PRECISION) {
    throw formatError(`could not parse formatting clause: error while parsing precision: precision ${precision} exceeds maximum allowed precision ${MAX_PRECISION}`);
  }
  return { precision, next };
}

/** `template.format(args)`. */
export function formatString(template: string, args: readonly unknown[] | Set<unknown>): string {
  const values = Array.isArray(args) ? args : [...args];
  let result = '';
  let argIndex = 0;
  let i = 0;
  while (i < template.length) {
    const char = template[i];
    if (char !== '%') {
      result += char;
      i++;
      continue;
    }
    if (template[i + 1] === '%') {
      result += '%';
      i += 2;
      continue;
    }
    if (i + 1 >= template.length) throw formatError('unexpected end of string');
    if (argIndex >= values.length) throw formatError(`index ${argIndex} out of range`);
    const { precision, next } = parsePrecision(template, i + 1);
    const verb = String.fromCodePoint(template.codePointAt(next) ?? 0);
    if (!VERBS.has(verb)) throw formatError(`could not parse formatting clause: unrecognized formatting clause "${verb}"`);
    try {
      result += formatClause(verb, precision, values[argIndex]);
    } catch (error) {
      if (error instanceof FormatClauseError) throw formatError(`error during formatting: ${error.message}`);
      throw error;
    }
    argIndex++;
    i = next + verb.length;
  }
  return result;
}
