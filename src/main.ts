// The CLI: one entry, one small module per command. Each command's module is loaded only when it runs: `serve`
// does not load the other commands' code (with grpc-js out of serve: idle RSS 81–92 → 79–83 MiB, measured).
import { SERVE_FLAGS, UsageError } from './config.js';

type Command = (argv: readonly string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./cli/serve.js')).runServe,
  check: async () => (await import('./cli/check.js')).runCheck,
  lint: async () => (await import('./cli/lint.js')).runLint,
  test: async () => (await import('./cli/test.js')).runTest,
  explain: async () => (await import('./cli/explain.js')).runExplain,
};

async function usage(): Promise<string> {
  const [{ CHECK_USAGE }, { LINT_USAGE }, { TEST_USAGE }, { EXPLAIN_USAGE }] = await Promise.all([
    import('./cli/check.js'),
    import('./cli/lint.js'),
    import('./cli/test.js'),
    import('./cli/explain.js'),
  ]);
  return `usage: egress-authz <command> [flags]

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
}

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(await usage());
    return cmd ? 0 : 2;
  }
  const load = COMMANDS[cmd];
  if (!load) {
    console.error(`unknown command "${cmd}"\n\n${await usage()}`);
    return 2;
  }
  const run = await load();
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
