// Runs policy test files: loads the policies beside each file the way `serve` would, sends every case's
// request through the real Authorizer (stand-ins replace identity/metadata backends), and compares.
import { Metrics } from '../../observability/metrics.js';
import { silentLogger } from '../../observability/logger.js';
import { Authorizer } from '../../pipeline/authorizer.js';
import type { Decision } from '../../pipeline/decision.js';
import { Services, type RuntimeConfig } from '../../pipeline/services.js';
import type { Diagnostic, SourcePos } from '../diagnostics.js';
import { loadPolicyDirectory } from '../load.js';
import { compareDecision, type Mismatch } from './expect.js';
import { toRequestViewFromSpec } from './request.js';
import { findTestFiles, readTestFile, type TestCase, type TestFile } from './test-file.js';

export interface CaseResult {
  readonly file: string;
  readonly name: string;
  readonly pos: SourcePos;
  readonly passed: boolean;
  readonly mismatches: readonly Mismatch[];
  /** Why the case could not run or be read (its own problems are in the file's diagnostics). */
  readonly error?: string;
  readonly durationMs: number;
  readonly decision?: Decision;
  readonly testCase?: TestCase;
}

export interface FileResult {
  readonly file: string;
  readonly policiesDir: string;
  /** Problems in the test file and in the policies it runs against, file:line:col. */
  readonly diagnostics: readonly Diagnostic[];
  readonly cases: readonly CaseResult[];
}

export interface RunResult {
  readonly files: readonly FileResult[];
  readonly passed: number;
  readonly failed: number;
}

export interface RunOptions {
  readonly checkDeadlineMs?: number;
  readonly defaultDecision?: RuntimeConfig['defaultDecision'];
}

const DEFAULTS = { checkDeadlineMs: 2000, defaultDecision: 'deny' as const };

async function runCase(authorizer: Authorizer, file: string, c: TestCase): Promise<CaseResult> {
  const t0 = performance.now();
  const view = toRequestViewFromSpec(c.request);
  let decision: Decision | undefined;
  for (let i = 0; i < c.repeat; i++) {
    decision = (await authorizer.check(view, { standIns: c.standIns })).decision;
  }
  const mismatches = compareDecision(c.expect, decision!);
  return {
    file,
    name: c.name,
    pos: c.pos,
    passed: mismatches.length === 0,
    mismatches,
    durationMs: performance.now() - t0,
    decision,
    testCase: c,
  };
}

/** Runs one parsed test file against the policies of its directory (or its `policies:`). */
export async function runTestFile(tf: TestFile, opts: RunOptions = {}): Promise<FileResult> {
  const config: RuntimeConfig = { ...DEFAULTS, ...opts };
  const unread: CaseResult[] = (
    // File-level problems with every case readable (e.g. a misspelt `policies:`) still fail the run.
    tf.unreadable.length === 0 && tf.diagnostics.length > 0
      ? [{ name: '(test file)', pos: tf.diagnostics[0]! }]
      : tf.unreadable
  ).map((u) => ({
    file: tf.file,
    name: u.name,
    pos: u.pos,
    passed: false,
    mismatches: [],
    error: 'not run: the test file has errors (see above)',
    durationMs: 0,
  }));
  // One Services per file: rate-limit counters and caches are shared by the file's cases, in order.
  const services = new Services(config, silentLogger, new Metrics());
  try {
    const loaded = loadPolicyDirectory(tf.policiesDir, services);
    if (!loaded.ok) {
      const notRun = tf.cases.map((c) => ({
        file: tf.file,
        name: c.name,
        pos: c.pos,
        passed: false,
        mismatches: [],
        error: `not run: the policies in ${tf.policiesDir} did not load (see above)`,
        durationMs: 0,
      }));
      return { file: tf.file, policiesDir: tf.policiesDir, diagnostics: [...tf.diagnostics, ...loaded.diagnostics], cases: [...notRun, ...unread] };
    }
    const set = loaded.set;
    const authorizer = new Authorizer(services, () => set);
    const results: CaseResult[] = [];
    for (const c of tf.cases) results.push(await runCase(authorizer, tf.file, c));
    return { file: tf.file, policiesDir: tf.policiesDir, diagnostics: tf.diagnostics, cases: [...results, ...unread] };
  } finally {
    await services.close();
  }
}

/** Finds and runs every `*_test.yaml` under `target` (a directory or one test file). */
export async function runPolicyTests(target: string, opts: RunOptions = {}): Promise<RunResult> {
  const files: FileResult[] = [];
  for (const f of findTestFiles(target)) files.push(await runTestFile(readTestFile(f), opts));
  let passed = 0;
  let failed = 0;
  for (const f of files) for (const c of f.cases) c.passed ? passed++ : failed++;
  return { files, passed, failed };
}
