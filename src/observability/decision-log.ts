// One JSON line per Check. Identity is a label (username / principal), never a credential; every secret
// the Check handled is scrubbed from every field before the line is written.
import type { Logger } from 'pino';
import type { RequestView } from '../envoy/request-view.js';
import type { CheckOutcome } from '../pipeline/authorizer.js';

export type DecisionLogMode = 'all' | 'deny' | 'off';

function scrub(s: string, secrets: readonly string[]): string {
  let out = s;
  for (const secret of secrets) if (secret && secret.length >= 4 && out.includes(secret)) out = out.split(secret).join('[redacted]');
  return out;
}

export function logDecision(logger: Logger, mode: DecisionLogMode, view: RequestView, outcome: CheckOutcome, durationMs: number): void {
  const d = outcome.decision;
  if (mode === 'off' || (mode === 'deny' && d.kind === 'allow')) return;
  if (!logger.isLevelEnabled('info')) return;
  const s = outcome.secrets;
  logger.info(
    {
      msg: 'decision',
      requestId: view.requestId || undefined,
      policy: d.policy || undefined,
      identity: d.identity ? scrub(d.identity, s) : undefined,
      source: view.source.address || undefined,
      principal: view.source.principal || undefined,
      method: view.method,
      host: view.host,
      path: scrub(view.path, s),
      decision: d.kind,
      status: d.kind === 'allow' ? 200 : d.status,
      reason: scrub(d.reason, s),
      evaluator: d.evaluator,
      injected: d.kind === 'allow' && d.headers.length ? d.headers.map((h) => h.key) : undefined,
      durationMs: Math.round(durationMs * 1000) / 1000,
    },
  );
}
