// Rendering values for explain output with secrets taken out: credential-like header and field names
// (authorization, cookie, api keys, tokens, passwords) and every secret string the Check handled.

import { scrubSecrets } from '../../observability/decision-log.js';

const SENSITIVE = /(authorization|cookie|token|secret|passw|credential|api[-_]?key|^key$|[-_]key$|private|signature|jwt)/i;

export const REDACTED = '[redacted]';

/** A header or field name whose value is a credential more often than not. */
export function isSensitiveName(name: string): boolean {
  return SENSITIVE.test(name);
}

export { scrubSecrets };

interface OptionalLike {
  hasValue(): boolean;
  value(): unknown;
}

function isOptional(v: object): v is OptionalLike {
  return typeof (v as Partial<OptionalLike>).hasValue === 'function' && typeof (v as Partial<OptionalLike>).value === 'function';
}

const MAX_STRING = 200;
const MAX_ITEMS = 12;

/**
 * CEL-looking text for a value (strings quoted, ints bare, maps as {k: v}), with sensitive keys and secrets
 * redacted and long values cut.
 */
export function renderValue(v: unknown, secrets: readonly string[], depth = 0): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') {
    const s = scrubSecrets(v, secrets);
    return JSON.stringify(s.length > MAX_STRING ? `${s.slice(0, MAX_STRING)}…` : s);
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) ? v.toFixed(1) : String(v);
  if (typeof v === 'boolean') return String(v);
  if (v instanceof Date) return `timestamp("${v.toISOString()}")`;
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (depth >= 3) return '{…}';
  if (Array.isArray(v)) {
    const items = v.slice(0, MAX_ITEMS).map((x) => renderValue(x, secrets, depth + 1));
    return `[${items.join(', ')}${v.length > MAX_ITEMS ? ', …' : ''}]`;
  }
  if (typeof v === 'object') {
    if (isOptional(v)) return v.hasValue() ? `optional.of(${renderValue(v.value(), secrets, depth + 1)})` : 'optional.none()';
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    const shown = entries.slice(0, MAX_ITEMS).map(([k, x]) => {
      const key = String(k);
      return `${JSON.stringify(key)}: ${isSensitiveName(key) && x !== '' && x !== null ? REDACTED : renderValue(x, secrets, depth + 1)}`;
    });
    return `{${shown.join(', ')}${entries.length > MAX_ITEMS ? ', …' : ''}}`;
  }
  return String(v);
}

/** A value read at `name` (a header or field name): redacted whole when the name is sensitive. */
export function renderNamedValue(name: string, v: unknown, secrets: readonly string[]): string {
  if (isSensitiveName(name) && v !== '' && v !== null && v !== undefined) return REDACTED;
  return renderValue(v, secrets);
}
