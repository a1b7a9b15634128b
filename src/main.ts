// The CLI: one entry, one small module per command.
import { runCheck, CHECK_USAGE } from './cli/check.js';
import { runExplain, EXPLAIN_USAGE } from './cli/explain.js';
import { runLint, LINT_USAGE } from './cli/lint.js';
import { runServe } from './cli/serve.js';
import { runTest, TEST_USAGE } from './cli/test.js';
import { SERVE_FLAGS, UsageError } from './config.js';

const USAGE = `usage: egress-authz <command> [flags]

commands:
  serve    run the ext_authz gRPC server
  check    send one Check to a running server and print the decision
  lint     load and type-check every policy in a directory (every error, file:line:col)
  test     run the policy tests (*_test.yaml) beside the policies
  explain  show why a request gets its decision (policy, evaluators, values seen)

serve flags (each also an environment variable):
${SERVE_FLAGS.map((f) => `  --${f.name.padEnd(18)} ${f.env.padEnd(32)} ${f.help}${f.default ? ` (default ${f.default})` : ''}`).join('\n')}

${CHECK_USAGE}
${LINT_USAGE}
${TEST_USAGE}
${EXPLAIN_USAGE}`;

const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number>> = {
  serve: runServe,
  check: (argv) => runCheck(argv),
  lint: (argv) => runLint(argv),
  test: (argv) => runTest(argv),
  explain: (argv) => runExplain(argv),
};

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(USAGE);
    return cmd ? 0 : 2;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    console.error(`unknown command "${cmd}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
}
