// `npm run bench [-- <what>] [flags]`
//   load (default)  the floors (grpc-js; our transport) and every scenario under h2load → table, bench/results/<date>.md
//   hotpath         a warm Check's CPU by part (decode, authorizer, metrics, decision log, encode), in-process
//   codec           CheckRequest decode / CheckResponse encode: proto-loader vs direct protobufjs vs @bufbuild/protobuf
//   cold            time to first decision for new identities against slow fakes; 1,000 at once
//   memory          RSS with 100,000 distinct cached identities
// Flags (load): --quick (1 run per point), --runs N, --seconds S, --concurrency 1,16,64, --only id,id,
//   --serve-args "--decision-log off" (extra flags for every egress-authz server),
//   --node-flags "--max-semi-space-size=32" (extra node flags for every egress-authz server),
//   --label NAME (results file bench/results/<date>-NAME.md, for variant runs),
//   --runner tsx (run servers from src/ through tsx instead of compiling them into bench/.build),
//   --cpu-prof <scenario id, floor or floor-h2> (writes a .cpuprofile of that server under bench/results/tmp/ and prints its top frames)
import fs from 'node:fs';
import path from 'node:path';
import { runLoadBenchmark, renderTable } from './load.js';

const RESULTS_DIR = path.resolve(import.meta.dirname, 'results');

function flagValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  const a = argv[i]!;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[i + 1];
}

/** bench/results/<date>-<what>.md */
function writeResult(what: string, text: string): void {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${new Date().toISOString().slice(0, 10)}-${what}.md`);
  fs.writeFileSync(file, `${text}\n`);
  console.log(`written to ${path.relative(process.cwd(), file)}`);
}

async function main(argv: readonly string[]): Promise<void> {
  const what = argv[0] && !argv[0].startsWith('--') ? argv[0] : 'load';
  switch (what) {
    case 'load': {
      const quick = argv.includes('--quick');
      const profileScenario = flagValue(argv, 'cpu-prof');
      const profileDir = path.join(RESULTS_DIR, 'tmp', 'profiles');
      if (profileScenario) fs.mkdirSync(profileDir, { recursive: true });
      const { rows, markdown, profiledStartupMs } = await runLoadBenchmark({
        runs: Number(flagValue(argv, 'runs') ?? (quick ? 1 : 3)),
        seconds: Number(flagValue(argv, 'seconds') ?? 2),
        concurrencies: (flagValue(argv, 'concurrency') ?? '1,16,64').split(',').map(Number),
        only: (flagValue(argv, 'only') ?? '').split(',').filter(Boolean),
        cpuProfile: profileScenario ? { scenario: profileScenario, dir: profileDir } : undefined,
        resultsDir: RESULTS_DIR,
        runner: flagValue(argv, 'runner') === 'tsx' ? 'tsx' : 'compiled',
        extraServeArgs: (flagValue(argv, 'serve-args') ?? '').split(' ').filter(Boolean),
        extraNodeFlags: (flagValue(argv, 'node-flags') ?? '').split(' ').filter(Boolean),
      });
      console.log(`\n${renderTable(rows)}\n`);
      fs.mkdirSync(RESULTS_DIR, { recursive: true });
      const label = flagValue(argv, 'label');
      const file = path.join(RESULTS_DIR, `${new Date().toISOString().slice(0, 10)}${label ? `-${label.replace(/[^a-z0-9-]/gi, '-')}` : ''}.md`);
      fs.writeFileSync(file, markdown + '\n');
      console.log(`written to ${path.relative(process.cwd(), file)}`);
      if (profileScenario) {
        const { summarizeProfiles } = await import('./lib/profile-summary.js');
        const summary = summarizeProfiles(profileDir, profiledStartupMs);
        console.log(summary);
        fs.appendFileSync(file, `\n## CPU profile of "${profileScenario}"\n\n\`\`\`\n${summary}\n\`\`\`\n`);
      }
      break;
    }
    case 'codec': {
      const { runCodecBenchmark } = await import('./codec.js');
      writeResult('codec', await runCodecBenchmark());
      break;
    }
    case 'hotpath': {
      const { runHotPathBenchmark } = await import('./hot-path.js');
      writeResult('hotpath', await runHotPathBenchmark((flagValue(argv, 'only') ?? '').split(',').filter(Boolean)));
      break;
    }
    case 'cold': {
      const { runColdPathBenchmark } = await import('./cold-path.js');
      const text = await runColdPathBenchmark({
        latencyMs: Number(flagValue(argv, 'latency-ms') ?? 5),
        burst: Number(flagValue(argv, 'burst') ?? 1000),
        sequential: Number(flagValue(argv, 'sequential') ?? 20),
      });
      writeResult('cold', text);
      break;
    }
    case 'memory': {
      const { runMemoryBenchmark } = await import('./memory.js');
      const text = await runMemoryBenchmark(
        Number(flagValue(argv, 'identities') ?? 100_000),
        (flagValue(argv, 'node-flags') ?? '').split(' ').filter(Boolean),
      );
      writeResult('memory', text);
      break;
    }
    default:
      throw new Error(`unknown benchmark "${what}": load, hotpath, codec, cold or memory`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
