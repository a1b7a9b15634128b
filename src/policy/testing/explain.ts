// Explain one request: which policy governs it and why, each evaluator in order with its result and
// duration, the expression that decided with the values it saw, and the decision. Secrets are redacted
// before anything leaves this module (the model is what the admin endpoint returns as JSON).
import type { RequestView } from '../../envoy/request-view.js';
import type { Authorizer, CheckOutcome } from '../../pipeline/authorizer.js';
import type { StandIns } from '../../pipeline/context.js';
import type { Decision, HeaderMutation } from '../../pipeline/decision.js';
import type { SourcePos } from '../diagnostics.js';
import type { PolicySet } from '../policy-set.js';
import { REDACTED, isSensitiveName, renderNamedValue, scrubSecrets } from './redact.js';
import { evaluateSelection, plainSelections } from './selections.js';

export interface ExplainedValue {
  readonly expression: string;
  /** Rendered value (redacted), or `absent` / `error: ...`. */
  readonly value: string;
}

export interface ExplainedStep {
  readonly evaluator: string;
  readonly name: string;
  readonly result: string;
  readonly durationMs: number;
  readonly expression?: string;
  readonly at?: string;
  readonly values?: readonly ExplainedValue[];
}

export interface ExplainedHeader {
  readonly name: string;
  readonly value: string;
  readonly action: string;
}

export interface Explanation {
  readonly request: {
    readonly method: string;
    readonly host: string;
    readonly path: string;
    readonly principal?: string;
    readonly contextExtensions?: Readonly<Record<string, string>>;
    readonly headers: Readonly<Record<string, string>>;
  };
  readonly selection: {
    /** policy | global | unknown-context | none */
    readonly kind: string;
    readonly policy?: string;
    /** Why this policy: e.g. `exact host "api.openai.com"`. */
    readonly why: string;
    readonly hosts?: readonly string[];
    readonly documents?: ReadonlyArray<{ readonly kind: string; readonly name: string; readonly at: string }>;
  };
  /** Test stand-ins used instead of backends; `metadata` lists the sources given (undefined: none given). */
  readonly standIns?: { readonly identity: boolean; readonly metadata?: readonly string[] };
  readonly variables: readonly ExplainedValue[];
  readonly steps: readonly ExplainedStep[];
  readonly decision: {
    readonly kind: 'allow' | 'deny';
    readonly status: number;
    readonly policy: string;
    readonly evaluator: string;
    readonly reason: string;
    readonly headers: readonly ExplainedHeader[];
    readonly headersRemoved: readonly string[];
    readonly responseHeaders: readonly ExplainedHeader[];
    readonly body?: string;
  };
  readonly durationMs: number;
}

function at(p: SourcePos | undefined): string | undefined {
  return p ? `${p.file}:${p.line}:${p.col}` : undefined;
}

function describeSelection(set: PolicySet, view: RequestView, decision: Decision): Explanation['selection'] {
  const sel = set.select(view);
  switch (sel.kind) {
    case 'policy': {
      const p = sel.policy;
      let why: string;
      if (sel.via === 'context') why = `context extension policy=${view.contextExtensions['policy']}`;
      else if (sel.via === 'host') why = `exact host "${view.host}"`;
      else {
        const pattern = p.hosts.filter((h) => h.startsWith('*.') && view.host.endsWith(h.slice(1))).sort((a, b) => b.length - a.length)[0];
        why = `wildcard host "${pattern ?? '*'}" (longest match for ${view.host})`;
      }
      return {
        kind: 'policy',
        policy: p.name,
        why,
        hosts: p.hosts,
        documents: p.parts.map((d) => ({ kind: d.kind, name: d.name, at: at(d.pos)! })),
      };
    }
    case 'global':
      return {
        kind: 'global',
        policy: decision.policy || undefined,
        why: `no policy names host "${view.host}": global policies asked in order (${sel.policies.map((p) => p.name).join(', ')})`,
        documents: sel.policies.flatMap((p) => p.parts.map((d) => ({ kind: d.kind, name: d.name, at: at(d.pos)! }))),
      };
    case 'unknown-context':
      return { kind: 'unknown-context', why: `the route's context extension names policy "${sel.name}", which is not loaded` };
    case 'none':
      return { kind: 'none', why: `no policy governs host "${view.host}": the default rule decides` };
  }
}

function headerList(list: readonly HeaderMutation[], secrets: readonly string[]): ExplainedHeader[] {
  return list.map((h) => ({
    name: h.key,
    value: h.value && (isSensitiveName(h.key) || secrets.includes(h.value)) ? REDACTED : scrubSecrets(h.value, secrets),
    action: h.action,
  }));
}

function redactedHeaders(headers: Readonly<Record<string, string>>, secrets: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith(':')) continue;
    out[k] = isSensitiveName(k) && v ? REDACTED : scrubSecrets(v, secrets);
  }
  return out;
}

/** Builds the (redacted) explanation of a Check that ran with `trace: true`. */
export function buildExplanation(
  set: PolicySet,
  view: RequestView,
  outcome: CheckOutcome,
  durationMs: number,
  standIns?: StandIns,
): Explanation {
  // A "secret" the caller itself sent in the clear (x-workload: team-a, or the namespace inside its SPIFFE
  // principal, copied into an injected header) hides nothing from the person asking: keep it readable.
  // Everything else stays redacted.
  const sentInClear = [view.host, view.rawPath, view.source.principal];
  for (const [k, v] of Object.entries(view.headers)) if (!isSensitiveName(k)) sentInClear.push(v);
  const secrets = outcome.secrets.filter((x) => !sentInClear.some((v) => v.includes(x)));
  const d = outcome.decision;
  const activation = outcome.activation ?? {};
  const steps: ExplainedStep[] = (outcome.trace ?? []).map((s) => {
    const values = s.expression
      ? plainSelections(s.expression).map((sel) => {
          const r = evaluateSelection(sel.text, activation);
          return { expression: sel.text, value: r.ok ? renderNamedValue(sel.lastName, r.value, secrets) : r.error };
        })
      : undefined;
    return {
      evaluator: s.evaluator,
      name: s.name,
      result: scrubSecrets(s.result, secrets),
      durationMs: s.durationMs,
      expression: s.expression,
      at: at(s.pos),
      values,
    };
  });
  const vars = (activation['variables'] ?? {}) as Record<string, unknown>;
  return {
    request: {
      method: view.method,
      host: view.host,
      path: scrubSecrets(view.rawPath, secrets),
      principal: view.source.principal || undefined,
      contextExtensions: Object.keys(view.contextExtensions).length ? view.contextExtensions : undefined,
      headers: redactedHeaders(view.headers, secrets),
    },
    selection: describeSelection(set, view, d),
    standIns: standIns
      ? { identity: standIns.identity !== undefined, metadata: standIns.metadata ? Object.keys(standIns.metadata) : undefined }
      : undefined,
    variables: Object.entries(vars).map(([k, v]) => ({ expression: `variables.${k}`, value: renderNamedValue(k, v, secrets) })),
    steps,
    decision: {
      kind: d.kind,
      status: d.kind === 'allow' ? 200 : d.status,
      policy: d.policy,
      evaluator: d.evaluator,
      reason: scrubSecrets(d.reason, secrets),
      // Injected header values are in the Check's secrets (response.ts): they come out redacted.
      headers: headerList(d.headers, secrets),
      headersRemoved: d.kind === 'allow' ? [...d.headersToRemove] : [],
      responseHeaders: d.kind === 'allow' ? headerList(d.responseHeadersToAdd, secrets) : [],
      body: d.kind === 'deny' ? scrubSecrets(d.body, secrets) : undefined,
    },
    durationMs,
  };
}

/** Runs one request with tracing and explains it. */
export async function explainRequest(
  authorizer: Authorizer,
  set: PolicySet,
  view: RequestView,
  standIns?: StandIns,
): Promise<Explanation> {
  const t0 = performance.now();
  const outcome = await authorizer.check(view, { trace: true, set, standIns });
  return buildExplanation(set, view, outcome, performance.now() - t0, standIns);
}

function ms(n: number): string {
  return `${n.toFixed(3)} ms`;
}

/** The explanation as text for a terminal. */
export function renderExplanation(e: Explanation): string {
  const L: string[] = [];
  const r = e.request;
  const extras = [
    r.principal ? `principal ${r.principal}` : '',
    r.contextExtensions ? `context ${Object.entries(r.contextExtensions).map(([k, v]) => `${k}=${v}`).join(',')}` : '',
  ].filter(Boolean);
  L.push(`request:   ${r.method} ${r.host}${r.path}${extras.length ? `  (${extras.join('; ')})` : ''}`);
  const hdrs = Object.entries(r.headers);
  if (hdrs.length) L.push(`headers:   ${hdrs.map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  const s = e.selection;
  L.push(`policy:    ${s.policy ?? '(none)'} — selected by ${s.why}`);
  if (s.hosts?.length) L.push(`           hosts: ${s.hosts.join(', ')}`);
  for (const d of s.documents ?? []) L.push(`           ${d.kind} ${d.name} (${d.at})`);
  if (e.standIns) {
    const md = e.standIns.metadata;
    const parts = [e.standIns.identity ? 'identity' : '', md ? `metadata ${md.join(', ') || '(none)'}` : ''].filter(Boolean);
    L.push(`stand-ins: ${parts.join('; ') || 'none'} (backends not contacted)`);
  }
  if (e.variables.length) {
    L.push('variables:');
    for (const v of e.variables) L.push(`  ${v.expression} = ${v.value}`);
  }
  L.push('steps:');
  e.steps.forEach((st, i) => {
    L.push(`  ${String(i + 1).padStart(2)}. ${st.evaluator.padEnd(13)} ${st.name.padEnd(28)} ${st.result.padEnd(24)} ${ms(st.durationMs)}`);
    if (st.expression) {
      L.push(`      expression${st.at ? ` (${st.at})` : ''}:`);
      for (const line of st.expression.trim().split('\n')) L.push(`        ${line}`);
    }
    if (st.values?.length) {
      L.push('      values:');
      for (const v of st.values) L.push(`        ${v.expression} = ${v.value}`);
    }
  });
  const d = e.decision;
  L.push(`decision:  ${d.kind.toUpperCase()} ${d.status} by ${d.evaluator}${d.policy ? ` (policy ${d.policy})` : ''}: ${d.reason}`);
  for (const h of d.headers) L.push(`           ${d.kind === 'allow' ? 'set header' : 'header'} ${h.name}: ${h.value}  [${h.action}]`);
  for (const h of d.headersRemoved) L.push(`           remove header ${h}`);
  for (const h of d.responseHeaders) L.push(`           response header ${h.name}: ${h.value}`);
  if (d.body !== undefined) L.push(`           body: ${d.body}`);
  L.push(`took ${ms(e.durationMs)}`);
  return L.join('\n');
}
