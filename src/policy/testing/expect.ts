// Compares one decision with a case's expectation. Each difference names the field, what the test
// expected and what the policy did, so a failure reads as a diff without opening the policy.
import type { Decision, HeaderMutation } from '../../pipeline/decision.js';
import type { SourcePos } from '../diagnostics.js';
import type { Expectation, HeaderExpectation } from './test-file.js';

export interface Mismatch {
  /** Where the failing expectation is written. */
  readonly pos: SourcePos;
  /** The expectation that failed, e.g. `status`, `header "authorization"`. */
  readonly field: string;
  readonly expected: string;
  readonly actual: string;
}

const MAX_SHOWN = 240;

export function show(v: string | null | undefined): string {
  if (v === null || v === undefined) return '(not set)';
  const s = JSON.stringify(v);
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…"` : s;
}

export function statusOf(d: Decision): number {
  return d.kind === 'allow' ? 200 : d.status;
}

/** One line about a decision, for context next to a mismatch. */
export function summarizeDecision(d: Decision): string {
  const by = `${d.evaluator}${d.policy ? ` in ${d.policy}` : ''}`;
  return `${d.kind} ${statusOf(d)} by ${by}: ${d.reason}`;
}

/** The value each header ends up with from this decision's mutations (several values are joined by ", "). */
function headerValues(list: readonly HeaderMutation[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of list) {
    const k = h.key.toLowerCase();
    const prev = out.get(k);
    out.set(k, prev === undefined || h.action === 'overwrite' ? h.value : `${prev}, ${h.value}`);
  }
  return out;
}

function compareHeaders(
  want: readonly HeaderExpectation[],
  got: readonly HeaderMutation[],
  label: string,
  out: Mismatch[],
): void {
  if (!want.length) return;
  const values = headerValues(got);
  for (const h of want) {
    const actual = values.get(h.name);
    if (h.value === null ? actual === undefined : actual === h.value) continue;
    out.push({ pos: h.pos, field: `${label} "${h.name}"`, expected: show(h.value), actual: show(actual) });
  }
}

export function compareDecision(e: Expectation, d: Decision): Mismatch[] {
  const out: Mismatch[] = [];
  if (e.decision && e.decision.value !== d.kind) {
    out.push({ pos: e.decision.pos, field: 'decision', expected: e.decision.value, actual: summarizeDecision(d) });
  }
  if (e.status && e.status.value !== statusOf(d)) {
    out.push({ pos: e.status.pos, field: 'status', expected: String(e.status.value), actual: `${statusOf(d)} (${summarizeDecision(d)})` });
  }
  compareHeaders(e.headers, d.headers, 'header', out);
  if (e.responseHeaders.length) {
    compareHeaders(e.responseHeaders, d.kind === 'allow' ? d.responseHeadersToAdd : [], 'response header', out);
  }
  if (e.headersRemoved) {
    const removed = d.kind === 'allow' ? d.headersToRemove.map((h) => h.toLowerCase()) : [];
    const missing = e.headersRemoved.value.filter((h) => !removed.includes(h.toLowerCase()));
    if (missing.length) {
      out.push({
        pos: e.headersRemoved.pos,
        field: 'headersRemoved',
        expected: `[${missing.join(', ')}] removed`,
        actual: d.kind === 'allow' ? `removed [${removed.join(', ')}]` : `nothing removed (${summarizeDecision(d)})`,
      });
    }
  }
  if (e.bodyContains) {
    const body = d.kind === 'deny' ? d.body : '';
    for (const frag of e.bodyContains.value) {
      if (body.includes(frag)) continue;
      out.push({
        pos: e.bodyContains.pos,
        field: 'bodyContains',
        expected: `body containing ${show(frag)}`,
        actual: d.kind === 'deny' ? `body ${show(body)}` : `no body (${summarizeDecision(d)})`,
      });
    }
  }
  if (e.reason && !d.reason.includes(e.reason.value)) {
    out.push({ pos: e.reason.pos, field: 'reason', expected: `reason containing ${show(e.reason.value)}`, actual: show(d.reason) });
  }
  if (e.policy && e.policy.value !== d.policy) {
    out.push({ pos: e.policy.pos, field: 'policy', expected: show(e.policy.value), actual: show(d.policy || '(none)') });
  }
  return out;
}
