// `helm template` for deploy/helm/egress-authz, done with the Go-template subset in go-template.ts.
// Users with helm get the same objects from:
//   helm template egress-authz deploy/helm/egress-authz --namespace egress-authz
import fs from 'node:fs';
import path from 'node:path';
import { ChartTemplates } from './go-template.js';
import { DEPLOY_DIR, asK8sObject, isRecord, loadYamlDocuments, parseYamlDocuments, type K8sObject } from './k8s-objects.js';

export const CHART_DIR = path.join(DEPLOY_DIR, 'helm', 'egress-authz');

export interface RenderOptions {
  releaseName?: string;
  namespace?: string;
  /** Merged over values.yaml like `--values` (see mergeValues). */
  values?: Record<string, unknown>;
}

export interface RenderedChart {
  objects: K8sObject[];
  /** Template file -> its rendered text (NOTES.txt included). */
  files: Map<string, string>;
}

export function chartDefaultValues(): Record<string, unknown> {
  const [values] = loadYamlDocuments(path.join(CHART_DIR, 'values.yaml'));
  if (!isRecord(values)) throw new Error('values.yaml is not a mapping');
  return values;
}

export function chartMetadata(): Record<string, unknown> {
  const [chart] = loadYamlDocuments(path.join(CHART_DIR, 'Chart.yaml'));
  if (!isRecord(chart)) throw new Error('Chart.yaml is not a mapping');
  return chart;
}

/** Helm's coalescing of user values over values.yaml: maps merge, a null removes the key, the rest replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (isRecord(base) && isRecord(override)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(override)) {
      if (value === null) delete out[key];
      else out[key] = key in base ? mergeValues(base[key], value) : value;
    }
    return out;
  }
  return override;
}

export function renderChart(options: RenderOptions = {}): RenderedChart {
  const chart = chartMetadata();
  const releaseName = options.releaseName ?? 'egress-authz';
  const root = {
    Values: mergeValues(chartDefaultValues(), options.values ?? {}),
    Release: { Name: releaseName, Namespace: options.namespace ?? 'egress-authz', Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion, Description: chart.description },
  };

  const templatesDir = path.join(CHART_DIR, 'templates');
  const names = fs.readdirSync(templatesDir).sort();
  const templates = new ChartTemplates();
  for (const name of names) templates.add(name, fs.readFileSync(path.join(templatesDir, name), 'utf8'));

  const files = new Map<string, string>();
  const objects: K8sObject[] = [];
  for (const name of names) {
    // As in Helm: files starting with `_` only hold defines; NOTES.txt is text, not manifests.
    if (name.startsWith('_')) continue;
    const text = templates.render(name, root);
    files.set(name, text);
    if (!/\.ya?ml$/.test(name)) continue;
    parseYamlDocuments(text, `templates/${name}`).forEach((doc, i) => objects.push(asK8sObject(doc, `templates/${name} document ${i + 1}`)));
  }
  return { objects, files };
}
