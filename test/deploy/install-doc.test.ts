// docs/install.md stays true to deploy/: the paths it names exist, every chart value is documented, the
// istiod values snippet is the mesh config we ship, and the commands have the documented shapes.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { chartDefaultValues } from './helm.js';
import { DEPLOY_DIR, REPO_ROOT, findOne, isRecord, loadObjects, parseYamlDocuments } from './k8s-objects.js';

const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'install.md'), 'utf8');

/** Fenced code blocks of a language, with the fence's own indentation (inside list items) removed. */
function codeBlocks(language: string): string[] {
  return [...doc.matchAll(new RegExp('^( *)```' + language + '\\n([\\s\\S]*?)^\\1```', 'gm'))].map((m) =>
    m[2]!.replace(new RegExp('^' + m[1]!, 'gm'), ''),
  );
}

describe('docs/install.md', () => {
  it('names only files and directories that exist', () => {
    const named = [...doc.matchAll(/`((?:deploy\/|Dockerfile)[^`\s]*)`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(10);
    for (const file of new Set(named)) expect(fs.existsSync(path.join(REPO_ROOT, file)), file).toBe(true);
  });

  it('documents every top-level chart value', () => {
    for (const key of Object.keys(chartDefaultValues())) expect(doc, key).toMatch(new RegExp('`' + key + '[`.]'));
  });

  it('gives the istiod values that match deploy/istio/mesh-config.yaml', () => {
    const operator = findOne(loadObjects(path.join(DEPLOY_DIR, 'istio', 'mesh-config.yaml')), 'IstioOperator');
    const snippet = codeBlocks('yaml')
      .filter((block) => block.startsWith('meshConfig:'))
      .map((block) => parseYamlDocuments(block, 'install.md')[0])
      .find((value) => isRecord(value) && 'meshConfig' in value) as { meshConfig: unknown } | undefined;
    expect(snippet).toBeDefined();
    expect(snippet!.meshConfig).toEqual((operator.spec as { meshConfig: unknown }).meshConfig);
  });

  it('shows helm template, both kustomize installs and the check command in its CLI form', () => {
    const shell = codeBlocks('sh').join('\n');
    expect(shell).toContain('helm template egress-authz deploy/helm/egress-authz --namespace egress-authz');
    expect(shell).toContain('kubectl apply -k deploy/kubernetes/base');
    expect(shell).toContain('kubectl apply -k deploy/kgateway');
    expect(shell).toContain('kubectl apply -k deploy/istio');
    expect(shell).toMatch(/egress-authz check --addr \S+ --host \S+ --method \S+ --path \S+ \\\n\s+-H /);
  });
});
