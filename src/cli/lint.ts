// `egress-authz lint DIR`: load and type-check every policy; print every error as file:line:col: message.
import { parseArgs, UsageError } from '../config.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { Services } from '../pipeline/services.js';
import { formatDiagnostic } from '../policy/diagnostics.js';
import { loadPolicyDirectory } from '../policy/load.js';

export const LINT_USAGE = 'usage: egress-authz lint DIR [--format text|json]';

export async function runLint(argv: readonly string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv);
  if (positional.length !== 1) throw new UsageError(LINT_USAGE);
  const format = flags.get('format')?.[0] ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(LINT_USAGE);
  const services = new Services(
    { checkDeadlineMs: 150, defaultDecision: 'deny' },
    silentLogger,
    new Metrics(),
  );
  const r = loadPolicyDirectory(positional[0]!, services);
  await services.close();
  const diags = r.ok ? [] : r.diagnostics;
  if (format === 'json') {
    console.log(JSON.stringify({ ok: r.ok, errors: diags }, null, 2));
  } else if (r.ok) {
    console.log(`${positional[0]}: ${r.set.documentCount} documents, ${r.set.size} policies, no errors`);
  } else {
    for (const d of diags) console.log(formatDiagnostic(d));
    console.log(`${diags.length} error${diags.length === 1 ? '' : 's'}`);
  }
  return r.ok ? 0 : 1;
}
