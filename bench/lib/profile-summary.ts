// Summarizes V8 .cpuprofile files (node --cpu-prof): where the server's CPU time went, by function (self
// time) and by area (our code, grpc-js, protobufjs, cel-js, pino, prom-client, node internals, GC, idle).
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function areaOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)' || fn === '(program)') return fn;
  if (!url) return 'native / V8';
  if (url.startsWith('node:')) return `node internals (${url.replace(/^node:internal\//, '').split('/')[0]})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  const m = /\/(src|bench)\/(.+)$/.exec(url);
  return m ? `${m[1]}/${m[2]!.split('/')[0]}` : url;
}

function shortUrl(url: string): string {
  const pkg = /node_modules\/(.+)$/.exec(url)?.[1];
  if (pkg) return pkg;
  const m = /\/((?:src|bench)\/.+)$/.exec(url);
  return m ? m[1]! : url.replace(/^file:\/\//, '');
}

/** `skipMs`: leave out the first part of the profile (start-up: module loading, policy compilation). */
export function summarizeProfile(file: string, skipMs = 0, top = 30): string {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let elapsedUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    elapsedUs += delta;
    if (elapsedUs < skipMs * 1000) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  let busy = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    total += us;
    if (area !== '(idle)') busy += us;
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    if (area === '(idle)') continue;
    const key = `${functionName || '(anonymous)'}  ${url ? `${shortUrl(url)}:${lineNumber + 1}` : ''}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
  const lines = [
    `${path.basename(file)}: ${(total / 1e6).toFixed(1)} s sampled after the first ${(skipMs / 1000).toFixed(1)} s (start-up), ${(busy / 1e6).toFixed(1)} s busy (percentages of busy time)`,
    '  by area:',
    ...[...byArea].filter(([a]) => a !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 15).map(([a, us]) => `    ${pct(us)}  ${a}`),
    `  top ${top} functions by self time:`,
    ...[...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top).map(([f, us]) => `    ${pct(us)}  ${f}`),
  ];
  return lines.join('\n');
}

export function summarizeProfiles(dir: string, skipMs = 0): string {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
  if (files.length === 0) return `no .cpuprofile in ${dir} (did the server exit cleanly?)`;
  const newest = files.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]!;
  return summarizeProfile(newest, skipMs);
}
