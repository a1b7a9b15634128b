/**
 * Optional-value functions CEL defines that @marcbachmann/cel-js 8.0.0 lacks:
 *   optional.ofNonZeroValue(A)  optional.none() for a zero value (null, false, 0, 0u, 0.0, "",
 *                               b"", [], {}, a zero duration, the epoch timestamp)
 *   optional<A> == optional<A>  (and !=): both empty, or both set to equal values
 */
import { Optional, type Environment } from '@marcbachmann/cel-js';
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';
import { celEquals, celMapEntries, isCelMap } from './values.js';

export function isZeroValue(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
      return value === '';
    case 'bigint':
      return value === 0n;
    case 'number':
      return value === 0;
    case 'boolean':
      return !value;
    default:
      break;
  }
  if (value === null || value === undefined) return true;
  if (value instanceof UnsignedInt) return value.value === 0n;
  if (value instanceof Uint8Array || Array.isArray(value)) return value.length === 0;
  if (value instanceof Set) return value.size === 0;
  if (value instanceof Duration) return value.seconds === 0n && value.nanos === 0;
  if (value instanceof Date) return value.getTime() === 0;
  if (isCelMap(value)) return celMapEntries(value).length === 0;
  return false;
}

export function registerOptionals(env: Environment): void {
  env
    .registerFunction('OptionalNamespace.ofNonZeroValue(A): optional<A>', (_namespace: unknown, value: unknown) =>
      isZeroValue(value) ? Optional.none() : Optional.of(value),
    )
    .registerOperator('optional<A> == optional<A>', (a: Optional, b: Optional) => celEquals(a, b));
}
