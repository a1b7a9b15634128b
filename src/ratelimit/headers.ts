// RateLimit-Policy / RateLimit / Retry-After values, following draft-ietf-httpapi-ratelimit-headers-11
// (May 2026): both fields are Structured Field Lists of Items whose value is the policy name (an sf-string)
// with integer parameters — `q` (quota) and `w` (window, seconds) for RateLimit-Policy, `r` (available
// quota) and `t` (seconds until it is restored) for RateLimit. Seconds are rounded up, so neither `t`
// nor `Retry-After` ever points before the window really ends.
import type { HeaderAction, HeaderMutation } from '../pipeline/decision.js';

/** One rate of one limit as the workload sees it after a Check. */
export interface RateLimitItem {
  /** The quota policy name: the limit name, or "<limit>/<window>" for limits with several rates. */
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly remaining: number;
  readonly resetMs: number;
}

/** Whole seconds covering `ms`, at least 1 for a positive duration (the draft has no sub-second precision). */
export function ceilSeconds(ms: number): number {
  if (ms <= 0) return 0;
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * An sf-string (RFC 9651 §3.3.3): printable ASCII with `"` and `\` escaped. Other characters cannot be
 * represented, so they become `?` — limit names are normally plain ASCII anyway.
 */
export function sfString(text: string): string {
  // Limit names come from policies: few, and formatted on every rate-limited Check, so each is formatted once.
  let known = SF_STRINGS.get(text);
  if (known === undefined) {
    if (SF_STRINGS.size >= SF_STRINGS_MAX) SF_STRINGS.clear();
    known = formatSfString(text);
    SF_STRINGS.set(text, known);
  }
  return known;
}

const SF_STRINGS = new Map<string, string>();
const SF_STRINGS_MAX = 4_096;

function formatSfString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (code >= 0x20 && code <= 0x7e) out += ch;
    else out += '?';
  }
  return `${out}"`;
}

/** `"per-workload";q=100;w=60` items, comma-separated. */
export function rateLimitPolicyValue(items: readonly RateLimitItem[]): string {
  return items.map((item) => `${sfString(item.name)};q=${item.limit};w=${ceilSeconds(item.windowMs)}`).join(', ');
}

/** `"per-workload";r=0;t=37` items, comma-separated. */
export function rateLimitValue(items: readonly RateLimitItem[]): string {
  return items.map((item) => `${sfString(item.name)};r=${item.remaining};t=${ceilSeconds(item.resetMs)}`).join(', ');
}

/**
 * The header mutations for a Check's outcome. On a 429 they replace whatever is there (`overwrite`, plus
 * `Retry-After`); on an allowed request they are appended to the upstream's response (`append`), because an
 * upstream API may send RateLimit fields of its own and SF lists may be split over several field lines.
 */
export function rateLimitHeaders(
  items: readonly RateLimitItem[],
  options: { readonly retryAfterMs?: number; readonly action: HeaderAction },
): HeaderMutation[] {
  if (items.length === 0) return [];
  const headers: HeaderMutation[] = [];
  if (options.retryAfterMs !== undefined) {
    headers.push({ key: 'retry-after', value: String(Math.max(1, ceilSeconds(options.retryAfterMs))), action: 'overwrite' });
  }
  headers.push(
    { key: 'ratelimit-policy', value: rateLimitPolicyValue(items), action: options.action },
    { key: 'ratelimit', value: rateLimitValue(items), action: options.action },
  );
  return headers;
}
