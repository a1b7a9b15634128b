// The policy guide and the migration guide stay true: every YAML block they show is (part of) a file under
// docs/examples/, every example directory lints clean and passes its policy tests, and the request files
// the guide explains load.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintDirectory } from '../../src/cli/lint.js';
import { readRequestFile } from '../../src/cli/explain.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { formatText } from '../../src/policy/testing/report.js';
import { runPolicyTests } from '../../src/policy/testing/runner.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const EXAMPLES = path.join(ROOT, 'docs/examples');
const REQUESTS = path.join(EXAMPLES, 'requests');
const GUIDES = ['docs/policy-guide.md', 'docs/migrating.md'];

const scenarioDirs = fs
  .readdirSync(EXAMPLES, { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'requests')
  .map((e) => path.join(EXAMPLES, e.name));

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

function yamlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe('docs/examples', () => {
  it('has the scenarios of the guide', () => {
    expect(scenarioDirs.map((d) => path.basename(d)).sort()).toEqual(
      ['first-policy', 'kuadrant-access-control', 'kyverno-header', 'kyverno-scoped', 'rate-limit', 'vault-injection', 'vault-source'],
    );
  });

  it.each(scenarioDirs.map((d) => [path.basename(d), d]))('%s lints clean and ships tests', async (_name, dir) => {
    const r = await lintDirectory(dir);
    expect(r.errors.map(formatDiagnostic)).toEqual([]);
    expect(r.testFiles).toBeGreaterThan(0);
  });

  it.each(scenarioDirs.map((d) => [path.basename(d), d]))('%s passes its policy tests', async (_name, dir) => {
    const r = await runPolicyTests(dir);
    expect(formatText(r)).toEqual([`${r.passed} passed, 0 failed`]);
    expect(r.passed).toBeGreaterThanOrEqual(2);
  });

  it('request files for explain load', () => {
    const files = filesUnder(REQUESTS);
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const r = readRequestFile(f, fs.readFileSync(f, 'utf8'));
      expect(r.diagnostics.list.map(formatDiagnostic)).toEqual([]);
      expect(r.spec?.host).toBeTruthy();
    }
  });
});

describe.each(GUIDES)('%s', (guide) => {
  const text = fs.readFileSync(path.join(ROOT, guide), 'utf8');
  const exampleTexts = filesUnder(EXAMPLES).map((f) => fs.readFileSync(f, 'utf8'));

  it('shows YAML only from docs/examples (so every block is linted and tested)', () => {
    const blocks = yamlBlocks(text);
    expect(blocks.length).toBeGreaterThan(0);
    const orphans = blocks.filter((b) => !exampleTexts.some((t) => t.includes(b.trimEnd())));
    expect(orphans).toEqual([]);
  });

  it('links only to files that exist', () => {
    const links = [...text.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^https?:/.test(l));
    for (const l of links) expect(fs.existsSync(path.join(ROOT, 'docs', l)), l).toBe(true);
  });
});
