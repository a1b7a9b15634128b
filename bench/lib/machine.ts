// The machine a result was measured on, for the results file and docs/performance.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  h2load: string;
  kernel: string;
  /** 1-minute load average when the run started (other work on the machine skews the figures). */
  loadAverage: number;
}

export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  let h2load = 'not installed';
  try {
    h2load = execFileSync('/usr/bin/h2load', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as missing
  }
  return {
    cpus: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    h2load,
    kernel: `${os.type()} ${os.release()}`,
    loadAverage: os.loadavg()[0] ?? 0,
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB RAM, ${m.kernel}, Node ${m.node}, ${m.h2load}; load average ${m.loadAverage.toFixed(2)} at start`;
}
