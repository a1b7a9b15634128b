// The policy directory watcher: plain edits, new subdirectories, the Kubernetes ConfigMap `..data` symlink
// swap, a swapped symlink root (caught by the content poll), debouncing, and close().
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { PolicyDirectoryWatcher, directoryFingerprint } from '../../src/server/watch.js';
import { waitFor } from './ops-helpers.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-watch-'));
const watchers: PolicyDirectoryWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
});

function watch(dir: string, opts: { debounceMs?: number; pollIntervalMs?: number } = {}) {
  const reasons: string[] = [];
  const w = new PolicyDirectoryWatcher(dir, {
    debounceMs: opts.debounceMs ?? 50,
    pollIntervalMs: opts.pollIntervalMs ?? 0,
    logger: silentLogger,
    onChange: (reason) => reasons.push(reason),
  });
  watchers.push(w);
  return { w, reasons };
}

/** Lays out `dir` the way the kubelet mounts a ConfigMap, with `files` as its data. */
function configMapWrite(dir: string, version: string, files: Record<string, string>): void {
  const ts = path.join(dir, `..${version}`);
  fs.mkdirSync(ts);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(ts, name), text);
  const old = fs.existsSync(path.join(dir, '..data')) ? fs.readlinkSync(path.join(dir, '..data')) : undefined;
  // The kubelet's atomic writer: a new symlink, renamed over `..data` in one step.
  fs.symlinkSync(`..${version}`, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
  if (old) fs.rmSync(path.join(dir, old), { recursive: true });
}

describe('PolicyDirectoryWatcher', () => {
  it('reloads once after an edit to a file', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'one');
    const { reasons } = watch(dir);
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'two');
    await waitFor(() => reasons.length === 1, 'a reload');
    expect(reasons[0]).toContain('a.yaml');
  });

  it('collapses a burst of writes into one reload (debounce)', async () => {
    const dir = tmp();
    const { reasons } = watch(dir, { debounceMs: 300 });
    // Synchronous writes: every event is queued before the debounce timer can possibly run.
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, `p${i}.yaml`), `v${i}`);
    await waitFor(() => reasons.length >= 1, 'a reload');
    // One more change proves the watcher still runs, and that the burst produced exactly one reload.
    fs.writeFileSync(path.join(dir, 'p0.yaml'), 'again');
    await waitFor(() => reasons.length >= 2, 'a second reload');
    expect(reasons).toHaveLength(2);
  });

  it('watches subdirectories created after it started', async () => {
    const dir = tmp();
    const { w, reasons } = watch(dir);
    fs.mkdirSync(path.join(dir, 'team-a'));
    await waitFor(() => reasons.length === 1, 'a reload for the new directory');
    expect(w.watchedDirectories()).toContain(path.join(dir, 'team-a'));
    fs.writeFileSync(path.join(dir, 'team-a', 'p.yaml'), 'x');
    await waitFor(() => reasons.length === 2, 'a reload for a file inside it');
    expect(reasons[1]).toContain(path.join('team-a', 'p.yaml'));
  });

  it('follows a Kubernetes ConfigMap update (..data symlink swap), again and again', async () => {
    const dir = tmp();
    configMapWrite(dir, '2024_01_01_00_00_00.1', { 'p.yaml': 'v1' });
    const { w, reasons } = watch(dir);
    // Hidden entries are not watched themselves: their swap is an event in the mount directory.
    expect(w.watchedDirectories()).toEqual([dir]);
    configMapWrite(dir, '2024_01_01_00_00_00.2', { 'p.yaml': 'v2' });
    await waitFor(() => reasons.length === 1, 'a reload after the first swap');
    expect(fs.readFileSync(path.join(dir, 'p.yaml'), 'utf8')).toBe('v2');
    configMapWrite(dir, '2024_01_01_00_00_00.3', { 'p.yaml': 'v3' });
    await waitFor(() => reasons.length === 2, 'a reload after the second swap');
  });

  it('notices a swapped symlink root through the content poll', async () => {
    const base = tmp();
    fs.mkdirSync(path.join(base, 'v1'));
    fs.mkdirSync(path.join(base, 'v2'));
    fs.writeFileSync(path.join(base, 'v1', 'p.yaml'), 'v1');
    fs.writeFileSync(path.join(base, 'v2', 'p.yaml'), 'v2');
    fs.symlinkSync('v1', path.join(base, 'current'));
    const root = path.join(base, 'current');
    const { reasons } = watch(root, { pollIntervalMs: 50 });
    // The watch follows the old target, which does not change: only the poll can see this.
    fs.symlinkSync('v2', path.join(base, 'next'));
    fs.renameSync(path.join(base, 'next'), root);
    await waitFor(() => reasons.length === 1, 'the poll to notice the swap');
    expect(reasons[0]).toBe('poll: content changed');
  });

  it('does not reload on a poll when nothing changed, and stops after close()', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'one');
    const { w, reasons } = watch(dir, { pollIntervalMs: 20 });
    // About ten poll periods with identical content: no reload. (An absence can only be shown by waiting.)
    await new Promise((r) => setTimeout(r, 200));
    expect(reasons).toEqual([]);
    w.close();
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'two');
    await new Promise((r) => setTimeout(r, 200));
    expect(reasons).toEqual([]);
  });
});

describe('directoryFingerprint', () => {
  it('changes with content, not with hidden entries or reads', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'one');
    const f1 = directoryFingerprint(dir);
    expect(directoryFingerprint(dir)).toBe(f1);
    fs.writeFileSync(path.join(dir, '.hidden'), 'x');
    expect(directoryFingerprint(dir)).toBe(f1);
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'two');
    expect(directoryFingerprint(dir)).not.toBe(f1);
    expect(directoryFingerprint(path.join(dir, 'missing'))).toBe('missing');
  });
});
