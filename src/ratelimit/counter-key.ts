// The budget a request spends from: the policy, the limit and the values of the limit's counter
// expressions, encoded so that different inputs never produce the same key. The stores hash keys before
// they leave the process (Redis key names carry no usernames), so the raw values are fine here.

/** Thrown when a counter value cannot key a budget (null, or a type without a stable encoding). */
export class CounterValueError extends Error {
  override readonly name = 'CounterValueError';
}

/**
 * Counter keys are `"<policy>" NUL "<limit>" NUL <value> NUL ...`: names JSON-quoted, each CEL value
 * type-tagged — `s"text"` (JSON-quoted), `i42`, `d1.5`, `btrue`, `y<base64>`, `t<ISO time>`, `l[...]`,
 * `m{"key":...}` (keys sorted). Every encoded value starts with its type letter and strings are quoted, so
 * distinct inputs never share a key. The part fixed by the policy and the limit is built once per compiled
 * limit (this function); the values per request (counterKeyWith).
 */
export function counterKeyPrefix(policy: string, limit: string): string {
  return `${JSON.stringify(policy)}\u0000${JSON.stringify(limit)}`;
}

/** The counter key: `prefix` (from counterKeyPrefix) followed by the encoded values. */
export function counterKeyWith(prefix: string, values: readonly unknown[]): string {
  let key = prefix;
  for (let index = 0; index < values.length; index++) key += `\u0000${encode(values[index], `counter ${index + 1}`)}`;
  return key;
}

function encode(value: unknown, what: string): string {
  if (value === null || value === undefined) throw new CounterValueError(`${what} evaluated to null`);
  switch (typeof value) {
    case 'string':
      return `s${JSON.stringify(value)}`;
    case 'bigint':
      return `i${value}`;
    case 'number':
      // CEL doubles and ints are distinct values: 1.0 and 1 are different budgets.
      return `d${value}`;
    case 'boolean':
      return `b${value}`;
    default:
      break;
  }
  if (value instanceof Uint8Array) return `y${Buffer.from(value).toString('base64')}`;
  if (value instanceof Date) return `t${value.toISOString()}`;
  if (Array.isArray(value)) return `l[${value.map((item) => encode(item, what)).join(',')}]`;
  const prototype: unknown = Object.getPrototypeOf(value);
  if (value instanceof Map || prototype === Object.prototype || prototype === null) {
    const entries =
      value instanceof Map ? [...value.entries()].map(([k, v]) => [String(k), v] as const) : Object.entries(value as object);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `m{${entries.map(([k, v]) => `${JSON.stringify(k)}:${encode(v, what)}`).join(',')}}`;
  }
  const typeName = (value as { constructor?: { name?: string } }).constructor?.name ?? 'value';
  throw new CounterValueError(`${what} evaluated to a ${typeName}, which cannot key a counter`);
}
