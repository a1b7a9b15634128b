// JSON from a backend → values CEL expressions read at auth.metadata.<name>, and the strings among them that
// must be scrubbed from logs.

/**
 * JSON.parse output with whole numbers as CEL ints (bigint), so `x.version + 1` and `x.version == 2` both
 * work; other numbers stay doubles. Objects become null-prototype-free plain objects (CEL maps).
 */
export function toCelValue(json: unknown): unknown {
  if (typeof json === 'number') return Number.isSafeInteger(json) ? BigInt(json) : json;
  if (Array.isArray(json)) return json.map(toCelValue);
  if (json !== null && typeof json === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(json)) out[k] = toCelValue(v);
    return out;
  }
  return json;
}

/** Every string leaf of a JSON value. */
export function stringLeaves(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const v of value) stringLeaves(v, into);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) stringLeaves(v, into);
  return into;
}

const SECRET_KEY = /token|secret|passw|key|credential|jwt|bearer/i;
/** Long opaque strings (tokens, keys) are scrubbed even under innocent-looking keys. */
const LONG_OPAQUE = 20;

/**
 * Strings of a generic HTTP response that may be credentials: values under secret-sounding keys
 * (client_token, api_key, password, ...) and every long string. Short names (a namespace, a role) are kept
 * so that decision logs stay readable.
 */
export function likelySecrets(value: unknown, into: string[] = [], underSecretKey = false): string[] {
  if (typeof value === 'string') {
    if (underSecretKey || value.length >= LONG_OPAQUE) into.push(value);
  } else if (Array.isArray(value)) {
    for (const v of value) likelySecrets(v, into, underSecretKey);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) likelySecrets(v, into, underSecretKey || SECRET_KEY.test(k));
  }
  return into;
}
