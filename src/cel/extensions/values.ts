/**
 * How CEL values look at run time in @marcbachmann/cel-js, and their CEL type names.
 */
import { Optional } from '@marcbachmann/cel-js';
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';

/** A CEL `type` value: cel-js represents these as instances of an unexported class with a name. */
export interface CelTypeValue {
  readonly name: string;
}

export function isCelTypeValue(value: unknown): value is CelTypeValue {
  return (
    typeof value === 'object' &&
    value !== null &&
    value.constructor?.name === 'Type' &&
    typeof (value as { name?: unknown }).name === 'string'
  );
}

/** A CEL map: cel-js accepts both JS Maps and plain objects. */
export function isCelMap(value: unknown): value is Map<unknown, unknown> | Record<string, unknown> {
  if (value instanceof Map) return true;
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** Entries of a CEL map in iteration order. */
export function celMapEntries(value: Map<unknown, unknown> | Record<string, unknown>): Array<[unknown, unknown]> {
  return value instanceof Map ? [...value.entries()] : Object.entries(value);
}

/** The CEL type name of a run-time value, as CEL spells it (null_type, google.protobuf.Duration ...). */
export function celTypeOf(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'bigint':
      return 'int';
    case 'number':
      return 'double';
    case 'boolean':
      return 'bool';
    default:
      break;
  }
  if (value === null) return 'null_type';
  if (value instanceof Uint8Array) return 'bytes';
  if (value instanceof UnsignedInt) return 'uint';
  if (value instanceof Date) return 'google.protobuf.Timestamp';
  if (value instanceof Duration) return 'google.protobuf.Duration';
  if (value instanceof Optional) return 'optional_type';
  if (Array.isArray(value) || value instanceof Set) return 'list';
  if (isCelTypeValue(value)) return 'type';
  if (isCelMap(value)) return 'map';
  // Types this project defines (net.IP, net.CIDR, kubernetes.URL) say their CEL name themselves.
  const declaredName: unknown = (value as { celTypeName?: unknown }).celTypeName;
  if (typeof declaredName === 'string') return declaredName;
  const constructorName: unknown = (value as { constructor?: { name?: unknown } } | undefined)?.constructor?.name;
  return typeof constructorName === 'string' && constructorName !== '' ? constructorName : 'unknown';
}

/** cel-js names the null type 'null'; CEL calls it null_type. */
export function celTypeValueName(type: CelTypeValue): string {
  return type.name === 'null' ? 'null_type' : type.name;
}

function numericValue(value: unknown): number | bigint | undefined {
  if (typeof value === 'bigint' || typeof value === 'number') return value;
  if (value instanceof UnsignedInt) return value.value;
  return undefined;
}

function numbersEqual(a: number | bigint, b: number | bigint): boolean {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a === b;
  // int/uint against double: equal when the double is integral and has that exact value.
  const double = typeof a === 'number' ? a : (b as number);
  const integer = typeof a === 'number' ? b : a;
  if (typeof integer === 'number') return integer === double;
  return Number.isInteger(double) && BigInt(double) === integer;
}

/** CEL's `==` on run-time values (heterogeneous numeric equality, deep lists and maps). */
export function celEquals(a: unknown, b: unknown): boolean {
  const numberA = numericValue(a);
  const numberB = numericValue(b);
  if (numberA !== undefined || numberB !== undefined) {
    return numberA !== undefined && numberB !== undefined && numbersEqual(numberA, numberB);
  }
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b;
  if (a instanceof Uint8Array) return b instanceof Uint8Array && a.length === b.length && a.every((byte, i) => byte === b[i]);
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof Duration) return b instanceof Duration && a.seconds === b.seconds && a.nanos === b.nanos;
  if (a instanceof Optional) {
    if (!(b instanceof Optional) || a.hasValue() !== b.hasValue()) return false;
    return !a.hasValue() || celEquals(a.value(), b.value());
  }
  if (isCelTypeValue(a)) return isCelTypeValue(b) && a.name === b.name;
  if (Array.isArray(a) || a instanceof Set) {
    if (!(Array.isArray(b) || b instanceof Set)) return false;
    const listA = [...a];
    const listB = [...b];
    return listA.length === listB.length && listA.every((item, i) => celEquals(item, listB[i]));
  }
  if (isCelMap(a)) {
    if (!isCelMap(b)) return false;
    const entriesA = celMapEntries(a);
    const entriesB = celMapEntries(b);
    return (
      entriesA.length === entriesB.length &&
      entriesA.every(([key, value]) => entriesB.some(([otherKey, otherValue]) => celEquals(key, otherKey) && celEquals(value, otherValue)))
    );
  }
  const equals: unknown = (a as { equals?: unknown }).equals;
  if (typeof equals === 'function' && a.constructor === b.constructor) return equals.call(a, b) === true;
  return a === b;
}
