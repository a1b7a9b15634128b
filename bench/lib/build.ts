// Servers under test run as compiled JavaScript, as `node bin/egress-authz.js` runs in production: no tsx
// loader thread (it costs ~40 MB RSS and would blur the memory figures). The harness compiles src/ and the
// bench entry points into bench/.build (incremental, a few seconds); `--runner tsx` skips that.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';

export type Runner = 'compiled' | 'tsx';

const BUILD_DIR = path.join(REPO_ROOT, 'bench', '.build');
const TSC = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** Compiles; type errors are reported but do not stop the run when JavaScript was emitted. */
export async function buildServers(log: (s: string) => void): Promise<void> {
  const output = await new Promise<{ code: number; text: string }>((resolve) => {
    execFile(process.execPath, [TSC, '-p', path.join(REPO_ROOT, 'bench', 'tsconfig.build.json')], { cwd: REPO_ROOT }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, text: `${stdout}${stderr}` }),
    );
  });
  for (const script of ['floor-server', 'egress-authz-entry']) {
    if (!fs.existsSync(compiledPath(`bench/${script}`))) throw new Error(`bench build emitted no ${script}.js:\n${output.text}`);
  }
  if (output.code !== 0) log(`note: tsc reported type errors (JavaScript was emitted, the run continues):\n${output.text.trim()}\n`);
}

/** bench/floor-server → the file node runs under the chosen runner. */
export function entryFile(script: string, runner: Runner): string {
  return runner === 'tsx' ? path.join(REPO_ROOT, `${script}.ts`) : compiledPath(script);
}

function compiledPath(script: string): string {
  return path.join(BUILD_DIR, `${script}.js`);
}
