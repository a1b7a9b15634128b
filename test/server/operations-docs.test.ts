// docs/operations.md stays true: its flag table is exactly what SERVE_FLAGS generates (every flag, env var and
// default), and every metric the server registers is documented.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVE_FLAGS, serveFlagsMarkdown } from '../../src/config.js';
import { Metrics } from '../../src/observability/metrics.js';

const doc = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/operations.md'), 'utf8');

describe('docs/operations.md', () => {
  it('lists every serve flag with its environment variable and default (the generated table)', () => {
    const m = /<!-- serve-flags:begin[^>]*-->\n([\s\S]*?)\n<!-- serve-flags:end -->/.exec(doc);
    expect(m, 'the serve-flags markers').not.toBeNull();
    // On failure: replace the table between the markers with the output of serveFlagsMarkdown().
    expect(m![1]).toBe(serveFlagsMarkdown());
    for (const f of SERVE_FLAGS) {
      expect(doc).toContain(`\`--${f.name}\``);
      expect(doc).toContain(`\`${f.env}\``);
    }
  });

  it('documents every metric the server registers', async () => {
    const names = (await new Metrics().registry.getMetricsAsJSON()).map((x) => x.name);
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
  });
});
