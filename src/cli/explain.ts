// `egress-authz explain --policies DIR --request REQUEST.yaml`: why a request gets its decision, without a
// server: the policy that matched and why, every evaluator with its result and duration, the expression
// that decided and the values it saw (secrets redacted).
import fs from 'node:fs';
import { parseDocument } from 'yaml';
import { parseArgs, UsageError } from '../config.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { Authorizer } from '../pipeline/authorizer.js';
import type { StandIns } from '../pipeline/context.js';
import { Services } from '../pipeline/services.js';
import { Diagnostics, formatDiagnostic } from '../policy/diagnostics.js';
import { loadPolicyDirectory } from '../policy/load.js';
import { explainRequest, renderExplanation } from '../policy/testing/explain.js';
import { readRequestSpec, toRequestViewFromSpec, type RequestSpec } from '../policy/testing/request.js';
import { CASE_KEYS, readStandIns } from '../policy/testing/test-file.js';
import { SourceFile, YNode } from '../policy/yaml-node.js';
import { consoleIo, type CliIo } from './io.js';

export const EXPLAIN_USAGE = `usage: egress-authz explain --policies DIR --request REQUEST.yaml [--format text|json]
  REQUEST.yaml: {host, method, path, headers, principal, contextExtensions, body}, or a test case
  ({request: ..., identity: ..., metadata: ...}) whose stand-ins replace identity and metadata backends`;

/** Reads a request file: a bare request, or a test-case-shaped document with stand-ins. */
export function readRequestFile(file: string, text: string): { spec?: RequestSpec; standIns?: StandIns; diagnostics: Diagnostics } {
  const diags = new Diagnostics();
  const src = new SourceFile(file, text);
  const doc = parseDocument(text, { lineCounter: src.lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const e of doc.errors) diags.error(src.pos(e.pos[0]), `YAML: ${e.message.split('\n')[0]}`);
  if (doc.errors.length) return { diagnostics: diags };
  const root = YNode.of(src, doc, diags);
  if (root.isMap && root.get('request')) {
    root.checkKeys(CASE_KEYS, 'request file');
    return { spec: readRequestSpec(root.get('request')!), standIns: readStandIns(root), diagnostics: diags };
  }
  return { spec: readRequestSpec(root), diagnostics: diags };
}

export async function runExplain(argv: readonly string[], io: CliIo = consoleIo): Promise<number> {
  const { flags, positional } = parseArgs(argv);
  for (const k of flags.keys()) if (!['policies', 'request', 'format'].includes(k)) throw new UsageError(`unknown flag --${k}\n${EXPLAIN_USAGE}`);
  const dir = flags.get('policies')?.[0];
  const reqFile = flags.get('request')?.[0];
  const format = flags.get('format')?.[0] ?? 'text';
  if (positional.length || !dir || !reqFile || (format !== 'text' && format !== 'json')) throw new UsageError(EXPLAIN_USAGE);
  if (!fs.existsSync(dir)) throw new UsageError(`--policies ${dir}: no such directory`);
  let text: string;
  try {
    text = fs.readFileSync(reqFile, 'utf8');
  } catch (err) {
    throw new UsageError(`--request ${reqFile}: ${(err as Error).message}`);
  }
  const req = readRequestFile(reqFile, text);
  if (req.diagnostics.hasErrors || !req.spec) {
    for (const d of req.diagnostics.list) io.err(formatDiagnostic(d));
    return 1;
  }
  const services = new Services({ checkDeadlineMs: 2000, defaultDecision: 'deny' }, silentLogger, new Metrics());
  try {
    const loaded = loadPolicyDirectory(dir, services);
    if (!loaded.ok) {
      for (const d of loaded.diagnostics) io.err(formatDiagnostic(d));
      return 1;
    }
    const authorizer = new Authorizer(services, () => loaded.set);
    const e = await explainRequest(authorizer, loaded.set, toRequestViewFromSpec(req.spec), req.standIns);
    io.out(format === 'json' ? JSON.stringify(e, null, 2) : renderExplanation(e));
    return 0;
  } finally {
    await services.close();
  }
}
