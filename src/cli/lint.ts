// `egress-authz lint DIR`: load and type-check every policy (and the policy test files beside them) the
// way `serve` would; print every error at once as file:line:col: message. Exit 0 clean, 1 errors, 2 usage.
import fs from 'node:fs';
import { parseArgs, UsageError } from '../config.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { Services } from '../pipeline/services.js';
import { formatDiagnostic, type Diagnostic } from '../policy/diagnostics.js';
import { loadPolicyDirectory } from '../policy/load.js';
import { findTestFiles, readTestFile } from '../policy/testing/test-file.js';
import { consoleIo, type CliIo } from './io.js';

export const LINT_USAGE = 'usage: egress-authz lint DIR [--format text|json]';

export interface LintResult {
  readonly ok: boolean;
  readonly errors: readonly Diagnostic[];
  readonly documents: number;
  readonly policies: number;
  readonly testFiles: number;
}

/** Lints a policy directory: every policy error, then every problem in its `*_test.yaml` files. */
export async function lintDirectory(dir: string): Promise<LintResult> {
  const services = new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
  try {
    const r = loadPolicyDirectory(dir, services);
    const testFiles = findTestFiles(dir);
    const errors = [...(r.ok ? [] : r.diagnostics), ...testFiles.flatMap((f) => readTestFile(f).diagnostics)];
    return {
      ok: errors.length === 0,
      errors,
      documents: r.ok ? r.set.documentCount : 0,
      policies: r.ok ? r.set.size : 0,
      testFiles: testFiles.length,
    };
  } finally {
    await services.close();
  }
}

export async function runLint(argv: readonly string[], io: CliIo = consoleIo): Promise<number> {
  const { flags, positional } = parseArgs(argv);
  for (const k of flags.keys()) if (k !== 'format') throw new UsageError(`unknown flag --${k}\n${LINT_USAGE}`);
  if (positional.length !== 1) throw new UsageError(LINT_USAGE);
  const format = flags.get('format')?.[0] ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--format: text or json\n${LINT_USAGE}`);
  const dir = positional[0]!;
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${dir}: not a directory\n${LINT_USAGE}`);
  const r = await lintDirectory(dir);
  if (format === 'json') {
    io.out(JSON.stringify(r, null, 2));
  } else if (r.ok) {
    const tests = r.testFiles ? `, ${r.testFiles} test file${r.testFiles === 1 ? '' : 's'}` : '';
    io.out(`${dir}: ${r.documents} documents, ${r.policies} policies${tests}, no errors`);
  } else {
    for (const d of r.errors) io.out(formatDiagnostic(d));
    io.out(`${r.errors.length} error${r.errors.length === 1 ? '' : 's'}`);
  }
  return r.ok ? 0 : 1;
}
