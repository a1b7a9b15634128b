// Watches a policy directory and asks for a reload when it changes.
//
// Kubernetes mounts a ConfigMap as `dir/..data -> ..2024_05_01_…/` with `dir/a.yaml -> ..data/a.yaml`, and
// updates it by writing a new timestamped directory and renaming a fresh `..data` symlink over the old one.
// Watching the files would follow the old inodes forever; so we watch the directories themselves (the rename
// of `..data` is an event in `dir`), and after every burst of events re-resolve which directories exist and
// where they point. A slow content poll catches what file events can miss (a policies path that is itself a
// swapped symlink, network filesystems, an exhausted inotify limit).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export interface PolicyWatchOptions {
  /** Quiet time after the last event before `onChange` (a burst of writes is one reload). */
  readonly debounceMs: number;
  /** Content check interval; 0 turns the poll off. */
  readonly pollIntervalMs: number;
  readonly logger: Logger;
  /** Called after a debounced change; `reason` is for the log. */
  onChange(reason: string): void;
}

/** A burst that never goes quiet still reloads after this many debounce periods. */
const MAX_WAIT_DEBOUNCES = 10;

/**
 * A digest of every non-hidden regular file under `dir` (following symlinks, as the loader does), plus where
 * `dir` resolves to. Equal digests mean the loader would read the same bytes.
 */
export function directoryFingerprint(dir: string): string {
  const hash = crypto.createHash('sha256');
  let root: string;
  try {
    root = fs.realpathSync(dir);
  } catch {
    return 'missing';
  }
  hash.update(root);
  const seen = new Set<string>();
  const walk = (d: string, rel: string) => {
    let real: string;
    try {
      real = fs.realpathSync(d);
    } catch {
      return;
    }
    if (seen.has(real)) return; // a symlink loop
    seen.add(real);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(d, e.name);
      const st = fs.statSync(full, { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(full, `${rel}${e.name}/`);
      else if (st?.isFile()) {
        hash.update(`\0${rel}${e.name}\0`);
        try {
          hash.update(fs.readFileSync(full));
        } catch {
          hash.update('unreadable');
        }
      }
    }
  };
  walk(dir, '');
  return hash.digest('hex');
}

/** `dir` and its non-hidden subdirectories (through symlinks), each with the real path it resolves to. */
function directoriesToWatch(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    let real: string;
    try {
      real = fs.realpathSync(d);
    } catch {
      return;
    }
    if ([...out.values()].includes(real)) return;
    out.set(d, real);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // `..data` and friends: their swap is an event in `d` itself
      const full = path.join(d, e.name);
      if (e.isDirectory() || (e.isSymbolicLink() && fs.statSync(full, { throwIfNoEntry: false })?.isDirectory())) walk(full);
    }
  };
  walk(dir);
  return out;
}

export class PolicyDirectoryWatcher {
  /** Watched directory → [the real path it resolved to when watched, its watcher]. */
  private readonly watchers = new Map<string, { real: string; watcher: fs.FSWatcher }>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private burstStartedAt = 0;
  private burstReason = '';
  private pollTimer: NodeJS.Timeout | undefined;
  private lastFingerprint: string;
  private closed = false;

  /**
   * @param initialFingerprint the fingerprint taken before the active set was loaded, so a change made between
   *   that load and the watch starting is still noticed by the poll.
   */
  constructor(
    readonly dir: string,
    private readonly opts: PolicyWatchOptions,
    initialFingerprint = directoryFingerprint(dir),
  ) {
    this.lastFingerprint = initialFingerprint;
    this.resync();
    if (opts.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.poll(), opts.pollIntervalMs);
      this.pollTimer.unref();
    }
  }

  /** Directories currently watched (for tests and the debug log). */
  watchedDirectories(): string[] {
    return [...this.watchers.keys()];
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.debounceTimer);
    clearInterval(this.pollTimer);
    for (const { watcher } of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  /** Opens watchers for new directories, closes those for vanished ones or ones that now resolve elsewhere. */
  private resync(): void {
    if (this.closed) return;
    const want = directoriesToWatch(this.dir);
    for (const [d, w] of this.watchers) {
      if (want.get(d) !== w.real) {
        w.watcher.close();
        this.watchers.delete(d);
      }
    }
    for (const [d, real] of want) {
      if (this.watchers.has(d)) continue;
      try {
        // persistent: false — the watcher alone must not keep a draining process alive.
        const watcher = fs.watch(d, { persistent: false }, (event, file) => this.schedule(`${event} ${path.join(d, String(file ?? ''))}`));
        watcher.on('error', (err) => {
          // The directory went away (a ConfigMap swap removes the old one): re-resolve on the next event.
          this.opts.logger.debug({ dir: d, err: err.message }, 'policy watch: watcher closed');
          watcher.close();
          if (this.watchers.get(d)?.watcher === watcher) this.watchers.delete(d);
          this.schedule(`watch error on ${d}`);
        });
        this.watchers.set(d, { real, watcher });
      } catch (err) {
        // ENOSPC (inotify limit) or a race with a deletion: the poll still covers this directory.
        this.opts.logger.warn({ dir: d, err: (err as Error).message }, 'policy watch: cannot watch directory; relying on the poll');
      }
    }
  }

  private schedule(reason: string): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.debounceTimer) {
      this.burstStartedAt = now;
      this.burstReason = reason;
    }
    clearTimeout(this.debounceTimer);
    const waited = now - this.burstStartedAt;
    const maxWait = this.opts.debounceMs * MAX_WAIT_DEBOUNCES;
    this.debounceTimer = setTimeout(() => this.fire(), Math.max(0, Math.min(this.opts.debounceMs, maxWait - waited)));
    this.debounceTimer.unref();
  }

  private fire(): void {
    this.debounceTimer = undefined;
    if (this.closed) return;
    this.resync();
    // Taken before the reload reads the files: a write racing the reload changes the digest again and the
    // next event or poll reloads once more.
    this.lastFingerprint = directoryFingerprint(this.dir);
    this.opts.logger.debug({ reason: this.burstReason, watched: this.watchers.size }, 'policy watch: change detected');
    try {
      this.opts.onChange(this.burstReason);
    } catch (err) {
      this.opts.logger.error({ err: (err as Error).message }, 'policy watch: reload threw');
    }
  }

  private poll(): void {
    if (this.closed || this.debounceTimer) return;
    this.resync();
    if (directoryFingerprint(this.dir) !== this.lastFingerprint) this.schedule('poll: content changed');
  }
}
