// `egress-authz test DIR`: runs the policy test files (`*_test.yaml`) under DIR. One line per failure with
// expected vs actual, then `N passed, N failed`; exit 1 when anything failed, 2 on usage errors.
import fs from 'node:fs';
import { parseArgs, UsageError } from '../config.js';
import { runPolicyTests } from '../policy/testing/runner.js';
import { formatJUnit, formatText } from '../policy/testing/report.js';
import { explainFailures } from '../policy/testing/explain-failures.js';
import { consoleIo, type CliIo } from './io.js';

export const TEST_USAGE = `usage: egress-authz test DIR|FILE [--format text|junit] [--verbose] [--explain]
  runs every *_test.yaml under DIR against the policies beside it; --explain shows why each failing case
  got its decision`;

export async function runTest(argv: readonly string[], io: CliIo = consoleIo): Promise<number> {
  const { flags, positional } = parseArgs(argv);
  for (const k of flags.keys()) if (!['format', 'verbose', 'explain'].includes(k)) throw new UsageError(`unknown flag --${k}\n${TEST_USAGE}`);
  if (positional.length !== 1) throw new UsageError(TEST_USAGE);
  const format = flags.get('format')?.[0] ?? 'text';
  if (format !== 'text' && format !== 'junit') throw new UsageError(`--format: text or junit\n${TEST_USAGE}`);
  const target = positional[0]!;
  if (!fs.existsSync(target)) throw new UsageError(`${target}: no such file or directory`);
  const result = await runPolicyTests(target);
  if (result.files.length === 0) {
    io.err(`${target}: no *_test.yaml files found`);
    return 1;
  }
  if (format === 'junit') io.out(formatJUnit(result));
  else {
    io.out(formatText(result, flags.get('verbose')?.[0] === 'true').join('\n'));
    if (flags.get('explain')?.[0] === 'true') {
      for (const block of await explainFailures(result)) io.out(block);
    }
  }
  return result.failed > 0 ? 1 : 0;
}
