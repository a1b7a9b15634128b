// Test results → text (one line per failure, then `N passed, N failed`) or JUnit XML for CI.
import { formatDiagnostic, type SourcePos } from '../diagnostics.js';
import type { CaseResult, RunResult } from './runner.js';

function at(p: SourcePos): string {
  return `${p.file}:${p.line}:${p.col}`;
}

/** The failure lines of one case: `file:line:col: case "name": field: expected X, got Y`. */
export function failureLines(c: CaseResult): string[] {
  if (c.passed) return [];
  if (c.error) return [`${at(c.pos)}: case "${c.name}": ${c.error}`];
  return c.mismatches.map((m) => `${at(m.pos)}: case "${c.name}": ${m.field}: expected ${m.expected}, got ${m.actual}`);
}

export function summaryLine(r: RunResult): string {
  return `${r.passed} passed, ${r.failed} failed`;
}

export function formatText(r: RunResult, verbose = false): string[] {
  const lines: string[] = [];
  for (const f of r.files) {
    for (const d of f.diagnostics) lines.push(formatDiagnostic(d));
    for (const c of f.cases) {
      if (c.passed) {
        if (verbose) lines.push(`${at(c.pos)}: case "${c.name}": ok`);
      } else {
        lines.push(...failureLines(c));
      }
    }
  }
  lines.push(summaryLine(r));
  return lines;
}

function xml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    // XML 1.0 cannot carry most control characters, even escaped.
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '\uFFFD');
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

export function formatJUnit(r: RunResult): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const total = r.passed + r.failed;
  const totalMs = r.files.reduce((s, f) => s + f.cases.reduce((t, c) => t + c.durationMs, 0), 0);
  out.push(`<testsuites name="egress-authz policy tests" tests="${total}" failures="${r.failed}" errors="0" time="${seconds(totalMs)}">`);
  for (const f of r.files) {
    const failures = f.cases.filter((c) => !c.passed).length;
    const ms = f.cases.reduce((t, c) => t + c.durationMs, 0);
    out.push(`  <testsuite name="${xml(f.file)}" tests="${f.cases.length}" failures="${failures}" errors="0" time="${seconds(ms)}">`);
    for (const c of f.cases) {
      out.push(`    <testcase name="${xml(c.name)}" classname="${xml(f.file)}" file="${xml(f.file)}" line="${c.pos.line}" time="${seconds(c.durationMs)}">`);
      if (!c.passed) {
        const lines = failureLines(c);
        const detail = [...(c.error ? f.diagnostics.map(formatDiagnostic) : []), ...lines].join('\n');
        const first = c.error ?? (c.mismatches[0] ? `${c.mismatches[0].field}: expected ${c.mismatches[0].expected}, got ${c.mismatches[0].actual}` : 'failed');
        out.push(`      <failure message="${xml(first)}" type="policy-test">${xml(detail)}</failure>`);
      }
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return out.join('\n');
}
