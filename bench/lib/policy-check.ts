// Does a scenario's policy set load in this build? The harness skips scenarios whose features are missing
// (a section or method not implemented yet) instead of failing the whole run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { Services } from '../../src/pipeline/services.js';

export function writePolicyDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-bench-policies-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

/** undefined when the directory loads; otherwise the first diagnostic, as the reason to skip. */
export async function policyLoadProblem(dir: string, backends: { kubeconfig?: string; redisUrl?: string }): Promise<string | undefined> {
  const services = new Services(
    { checkDeadlineMs: 150, defaultDecision: 'deny', kubeconfig: backends.kubeconfig, redisUrl: backends.redisUrl },
    createLogger('silent'),
    new Metrics(),
  );
  try {
    const result = loadPolicyDirectory(dir, services);
    if (result.ok) return undefined;
    const first = result.diagnostics[0];
    const more = result.diagnostics.length > 1 ? ` (+${result.diagnostics.length - 1} more)` : '';
    return first ? `${formatDiagnostic(first).replace(dir + path.sep, '')}${more}` : 'policies do not load';
  } catch (err) {
    return `policies do not load: ${(err as Error).message}`;
  } finally {
    await services.close();
  }
}
