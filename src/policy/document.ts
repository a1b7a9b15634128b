// Reading policy files: YAML (multi-document) → typed documents with positions.
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Diagnostics } from './diagnostics.js';
import { SourceFile, YNode } from './yaml-node.js';

export const NATIVE_API_VERSION = 'egress-authz.dev/v1alpha1';

export type DocumentKind =
  | 'EgressPolicy'
  | 'AuthPolicy'
  | 'RateLimitPolicy'
  | 'HTTPRoute'
  | 'KyvernoAuthorizationPolicy'
  | 'KyvernoValidatingPolicy'
  | 'PolicyTest';

export interface PolicyDocument {
  readonly kind: DocumentKind;
  readonly apiVersion: string;
  readonly name: string;
  readonly namespace: string;
  readonly root: YNode;
  readonly spec: YNode;
  readonly annotations: Readonly<Record<string, string>>;
}

const KINDS: Record<string, Record<string, DocumentKind>> = {
  [NATIVE_API_VERSION]: { EgressPolicy: 'EgressPolicy' },
  'kuadrant.io/v1': { AuthPolicy: 'AuthPolicy', RateLimitPolicy: 'RateLimitPolicy' },
  'kuadrant.io/v1beta3': { AuthPolicy: 'AuthPolicy', RateLimitPolicy: 'RateLimitPolicy' },
  'gateway.networking.k8s.io/v1': { HTTPRoute: 'HTTPRoute' },
  'gateway.networking.k8s.io/v1beta1': { HTTPRoute: 'HTTPRoute' },
  'envoy.kyverno.io/v1alpha1': { AuthorizationPolicy: 'KyvernoAuthorizationPolicy' },
  'policies.kyverno.io/v1alpha1': { ValidatingPolicy: 'KyvernoValidatingPolicy' },
};

export function isPolicyFileName(name: string): boolean {
  return /\.(ya?ml)$/i.test(name) && !/_test\.ya?ml$/i.test(name) && !name.startsWith('.');
}

/** Policy files of a directory (recursively; skips hidden entries such as a ConfigMap's `..data`). */
export function listPolicyFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(d, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        // ConfigMap mounts are symlinks into ..data/: follow them.
        const st = fs.statSync(full, { throwIfNoEntry: false });
        isDir = !!st?.isDirectory();
        isFile = !!st?.isFile();
      }
      if (isDir) walk(full);
      else if (isFile && isPolicyFileName(e.name)) out.push(full);
    }
  };
  walk(dir);
  return out;
}

/** Parses one file's text. Unknown kinds are reported; documents of other tools are skipped silently. */
export function parsePolicyText(file: string, text: string, diags: Diagnostics): PolicyDocument[] {
  const src = new SourceFile(file, text);
  const docs = parseAllDocuments(text, { lineCounter: src.lineCounter, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: PolicyDocument[] = [];
  for (const doc of list) {
    for (const e of doc.errors) {
      const p = src.pos(e.pos[0]);
      diags.error(p, `YAML: ${e.message.split('\n')[0]}`);
    }
    if (doc.errors.length) continue;
    const root = YNode.of(src, doc, diags);
    if (root.isNull) continue;
    if (!root.isMap) {
      root.error('expected a Kubernetes-style document (apiVersion, kind, metadata, spec)');
      continue;
    }
    const apiVersion = root.get('apiVersion')?.string('apiVersion') ?? '';
    const kindName = root.get('kind')?.string('kind') ?? '';
    const kind = KINDS[apiVersion]?.[kindName];
    if (!kind) {
      if (!apiVersion || !kindName) root.error('document needs apiVersion and kind');
      else if (KINDS[apiVersion] || kindName === 'EgressPolicy') {
        root.get('kind')!.error(`unknown kind "${kindName}" for apiVersion ${apiVersion}`);
      }
      // Other Kubernetes objects (Gateway, ServiceEntry, ...) may share a file: ignore them.
      continue;
    }
    const meta = root.get('metadata');
    const name = meta?.get('name')?.string('metadata.name') ?? '';
    if (!name) (meta ?? root).error('metadata.name is required');
    const namespace = meta?.get('namespace')?.string('metadata.namespace') ?? '';
    const annotations: Record<string, string> = {};
    for (const [k, v] of meta?.get('annotations')?.entries() ?? []) {
      const s = v.string('an annotation value');
      if (s !== undefined) annotations[k] = s;
    }
    const spec = root.get('spec') ?? new YNode(src, null, diags, root.pos);
    out.push({ kind, apiVersion, name, namespace, root, spec, annotations });
  }
  return out;
}

export function readPolicyDirectory(dir: string, diags: Diagnostics): PolicyDocument[] {
  let files: string[];
  try {
    files = listPolicyFiles(dir);
  } catch (err) {
    diags.error({ file: dir, line: 1, col: 1 }, `cannot read policy directory: ${(err as Error).message}`);
    return [];
  }
  const docs: PolicyDocument[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (err) {
      diags.error({ file: f, line: 1, col: 1 }, `cannot read: ${(err as Error).message}`);
      continue;
    }
    docs.push(...parsePolicyText(f, text, diags));
  }
  return docs;
}
