// Policy test files (`*_test.yaml` beside the policies): a list of cases, each a request, optional
// stand-ins for identity and metadata results, and what the decision must look like. Every field keeps its
// position so a failing expectation is reported at the line that states it.
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { convenienceFields } from '../../identity/identity-object.js';
import { toCelValue } from '../../metadata/values.js';
import type { StandIns } from '../../pipeline/context.js';
import { Diagnostics, type Diagnostic, type SourcePos } from '../diagnostics.js';
import { SourceFile, YNode } from '../yaml-node.js';
import { readRequestSpec, type RequestSpec } from './request.js';

export interface Expected<T> {
  readonly value: T;
  readonly pos: SourcePos;
}

export interface HeaderExpectation {
  /** Lower-case header name. */
  readonly name: string;
  /** null: the header must not be set. */
  readonly value: string | null;
  readonly pos: SourcePos;
}

export interface Expectation {
  readonly pos: SourcePos;
  readonly decision?: Expected<'allow' | 'deny'>;
  readonly status?: Expected<number>;
  /** Allow: upstream request headers set; deny: headers of the denial response. */
  readonly headers: readonly HeaderExpectation[];
  /** Allow: headers added to the response sent back to the workload. */
  readonly responseHeaders: readonly HeaderExpectation[];
  readonly headersRemoved?: Expected<readonly string[]>;
  readonly bodyContains?: Expected<readonly string[]>;
  readonly reason?: Expected<string>;
  readonly policy?: Expected<string>;
}

export interface TestCase {
  readonly name: string;
  readonly pos: SourcePos;
  readonly request: RequestSpec;
  readonly standIns?: StandIns;
  /** Send the request this many times (rate limits); the expectation applies to the last answer. */
  readonly repeat: number;
  readonly expect: Expectation;
}

export interface TestFile {
  readonly file: string;
  /** The policy directory the cases run against (default: the test file's directory). */
  readonly policiesDir: string;
  readonly cases: readonly TestCase[];
  /** Problems in the test file itself; cases that could not be read are not in `cases`. */
  readonly diagnostics: readonly Diagnostic[];
  /** Cases the file lists but that could not be read (see diagnostics): they count as failed. */
  readonly unreadable: ReadonlyArray<{ readonly name: string; readonly pos: SourcePos }>;
}

export const TEST_FILE_KEYS = ['policies', 'cases'];
export const CASE_KEYS = ['name', 'request', 'identity', 'metadata', 'repeat', 'expect'];
export const EXPECT_KEYS = ['decision', 'status', 'headers', 'responseHeaders', 'headersRemoved', 'bodyContains', 'reason', 'policy'];

export function isTestFileName(name: string): boolean {
  return /_test\.ya?ml$/i.test(name) && !name.startsWith('.');
}

/** `*_test.yaml` files under `target` (a directory, walked recursively, or one file). */
export function findTestFiles(target: string): string[] {
  const st = fs.statSync(target, { throwIfNoEntry: false });
  if (!st) return [];
  if (st.isFile()) return [target];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      const full = path.join(d, e.name);
      const s = fs.statSync(full, { throwIfNoEntry: false });
      if (s?.isDirectory()) walk(full);
      else if (s?.isFile() && isTestFileName(e.name)) out.push(full);
    }
  };
  walk(target);
  return out;
}

function expected<T>(node: YNode | undefined, read: (n: YNode) => T | undefined): Expected<T> | undefined {
  if (!node || node.isNull) return undefined;
  const value = read(node);
  return value === undefined ? undefined : { value, pos: node.pos };
}

function readHeaderExpectations(node: YNode | undefined, what: string): HeaderExpectation[] {
  const out: HeaderExpectation[] = [];
  for (const [name, v] of node?.entries(`${what}: a map of header names to values (null: must not be set)`) ?? []) {
    const pos = v.node ? v.pos : v.fallback;
    if (v.isNull) out.push({ name: name.toLowerCase(), value: null, pos });
    else {
      const s = v.string(`${what}.${name}: a string, or null for "not set"`);
      if (s !== undefined) out.push({ name: name.toLowerCase(), value: s, pos });
    }
  }
  return out;
}

function readExpectation(node: YNode): Expectation | undefined {
  if (!node.isMap) {
    node.error('expect: a mapping (decision, status, headers, headersRemoved, bodyContains, reason, policy)');
    return undefined;
  }
  node.checkKeys(EXPECT_KEYS, 'expect');
  const decision = expected(node.get('decision'), (n) => {
    const s = n.string('allow or deny');
    if (s === 'allow' || s === 'deny') return s;
    n.error(`expect.decision: allow or deny, not "${s ?? ''}"`);
    return undefined;
  });
  const status = expected(node.get('status'), (n) => {
    const v = n.number('an HTTP status');
    if (v !== undefined && (!Number.isInteger(v) || v < 100 || v > 599)) {
      n.error('expect.status: an HTTP status from 100 to 599');
      return undefined;
    }
    return v;
  });
  const list = (k: string) => expected(node.get(k), (n) => (n.isScalar ? [n.string()!] : n.stringList(`expect.${k}: a list of strings`)));
  const e: Expectation = {
    pos: node.pos,
    decision,
    status,
    headers: readHeaderExpectations(node.get('headers'), 'expect.headers'),
    responseHeaders: readHeaderExpectations(node.get('responseHeaders'), 'expect.responseHeaders'),
    headersRemoved: list('headersRemoved'),
    bodyContains: list('bodyContains'),
    reason: expected(node.get('reason'), (n) => n.string('a substring of the reason')),
    policy: expected(node.get('policy'), (n) => n.string('a policy name')),
  };
  const empty = !e.decision && !e.status && !e.headers.length && !e.responseHeaders.length && !e.headersRemoved && !e.bodyContains && !e.reason && !e.policy;
  if (empty) {
    node.error('expect: state at least one of decision, status, headers, headersRemoved, bodyContains, reason, policy');
    return undefined;
  }
  return e;
}

/**
 * Every identity method exposes `username`, `namespace`, `serviceAccount` and `user.username` (docs/identity.md):
 * a stand-in that gives only `username` (or only `user.username`) gets the others the same way, so both
 * `auth.identity.user.username` (AuthPolicy style) and `auth.identity.username` work. Given fields are kept.
 */
export function completeIdentity(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const o = v as Record<string, unknown> & { user?: Record<string, unknown> };
  const username = typeof o.username === 'string' ? o.username : typeof o.user?.username === 'string' ? o.user.username : undefined;
  if (username === undefined) return v;
  const fields = convenienceFields(username);
  return {
    ...fields,
    ...o,
    user: { username, ...(typeof o.user === 'object' && o.user !== null ? o.user : {}) },
  };
}

/** `identity:` and `metadata:` stand-ins of a case (or of an explain request file). */
export function readStandIns(item: YNode): StandIns | undefined {
  const id = item.get('identity');
  const md = item.get('metadata');
  if (!id && !md) return undefined;
  let metadata: Record<string, unknown> | undefined;
  if (md) {
    metadata = {};
    // As a source's JSON answer would be: whole numbers are CEL ints (src/metadata/values.ts).
    for (const [name, v] of md.entries('metadata: a map of source names to their results')) metadata[name] = toCelValue(v.toJS());
  }
  if (id && id.isNull) id.error('identity: give the identity object the policy should see (e.g. {username: ...})');
  return { identity: id && !id.isNull ? completeIdentity(id.toJS()) : undefined, metadata };
}

function readCase(item: YNode, index: number): TestCase | undefined {
  if (!item.isMap) {
    item.error(`cases[${index}]: expected a mapping (name, request, expect)`);
    return undefined;
  }
  item.checkKeys(CASE_KEYS, `cases[${index}]`);
  const name = item.get('name')?.string('a case name') ?? '';
  if (!name) item.error(`cases[${index}]: name is required`);
  const reqNode = item.get('request');
  if (!reqNode) item.error(`cases[${index}]: request is required`);
  const request = reqNode ? readRequestSpec(reqNode) : undefined;
  const expNode = item.get('expect');
  if (!expNode) item.error(`cases[${index}]: expect is required`);
  const expect = expNode ? readExpectation(expNode) : undefined;
  let repeat = 1;
  const rep = item.get('repeat');
  if (rep) {
    const n = rep.number('a count');
    if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > 100_000)) rep.error('repeat: an integer from 1 to 100000');
    else if (n !== undefined) repeat = n;
  }
  const standIns = readStandIns(item);
  if (!name || !request || !expect) return undefined;
  return { name, pos: item.pos, request, standIns, repeat, expect };
}

function caseLabel(item: YNode, index: number): string {
  const n = item.isMap ? item.get('name')?.toJS() : undefined;
  return typeof n === 'string' && n ? n : `cases[${index}]`;
}

/** Parses one test file's text. */
export function parseTestFile(file: string, text: string): TestFile {
  const diags = new Diagnostics();
  const src = new SourceFile(file, text);
  const cases: TestCase[] = [];
  const unreadable: Array<{ name: string; pos: SourcePos }> = [];
  let policiesDir = path.dirname(file);
  const docs = parseAllDocuments(text, { lineCounter: src.lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    for (const e of doc.errors) diags.error(src.pos(e.pos[0]), `YAML: ${e.message.split('\n')[0]}`);
    if (doc.errors.length) continue;
    const root = YNode.of(src, doc, diags);
    if (root.isNull) continue;
    if (!root.isMap) {
      root.error('a policy test file is a mapping with `cases:` (and optionally `policies:`)');
      continue;
    }
    root.checkKeys(TEST_FILE_KEYS, 'policy test file');
    const pol = root.get('policies')?.string('a directory, relative to this file');
    if (pol) policiesDir = path.resolve(path.dirname(file), pol);
    const list = root.get('cases');
    if (!list) {
      root.error('policy test file: `cases:` is required');
      continue;
    }
    list.items('cases: a list').forEach((item, i) => {
      const before = diags.list.length;
      const c = readCase(item, i);
      // A case with any problem does not run (it counts as failed): a half-read expectation could pass wrongly.
      if (c && diags.list.length === before) cases.push(c);
      else unreadable.push({ name: caseLabel(item, i), pos: item.pos });
    });
  }
  return { file, policiesDir, cases, diagnostics: diags.list, unreadable };
}

export function readTestFile(file: string): TestFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { file, policiesDir: path.dirname(file), cases: [], unreadable: [], diagnostics: [{ file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] };
  }
  return parseTestFile(file, text);
}
