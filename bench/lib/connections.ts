// How many connections a server process holds open toward a backend: established TCP sockets of `pid` to the
// backend URL's port (`ss`, Linux). Undefined where `ss` is missing.
import { execFileSync } from 'node:child_process';

export function connectionsTo(pid: number, url: string): number | undefined {
  try {
    const port = new URL(url).port;
    const out = execFileSync('ss', ['-tnpH', 'state', 'established', 'dport', `= :${port}`], { encoding: 'utf8' });
    return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
  } catch {
    return undefined;
  }
}
