// `test --explain`: the explanation of every failing case, so a red test shows why the policy decided.
import { Metrics } from '../../observability/metrics.js';
import { silentLogger } from '../../observability/logger.js';
import { Authorizer } from '../../pipeline/authorizer.js';
import { Services } from '../../pipeline/services.js';
import { loadPolicyDirectory } from '../load.js';
import { explainRequest, renderExplanation } from './explain.js';
import { toRequestViewFromSpec } from './request.js';
import type { RunResult } from './runner.js';

export async function explainFailures(result: RunResult, checkDeadlineMs = 2000): Promise<string[]> {
  const blocks: string[] = [];
  for (const f of result.files) {
    const failing = f.cases.filter((c) => !c.passed && c.testCase);
    if (!failing.length) continue;
    // A fresh load: rate-limit counters start from zero here, unlike in the run itself.
    const services = new Services({ checkDeadlineMs, defaultDecision: 'deny' }, silentLogger, new Metrics());
    try {
      const loaded = loadPolicyDirectory(f.policiesDir, services);
      if (!loaded.ok) continue;
      const authorizer = new Authorizer(services, () => loaded.set);
      for (const c of failing) {
        const tc = c.testCase!;
        const e = await explainRequest(authorizer, loaded.set, toRequestViewFromSpec(tc.request), tc.standIns);
        blocks.push(`--- ${c.pos.file}:${c.pos.line}:${c.pos.col}: case "${c.name}"\n${renderExplanation(e)}`);
      }
    } finally {
      await services.close();
    }
  }
  return blocks;
}
