// What the benchmark reads from /proc: process trees, CPU time, RSS, and the
// CPU other processes use meanwhile (a sign the figures were disturbed).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return n > 0 ? n : 100;
})();

/** The process and every descendant (nginx's master and its worker, say). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const result: number[] = [];
  const walk = (p: number): void => {
    result.push(p);
    for (const c of parents.get(p) ?? []) walk(c);
  };
  walk(pid);
  return result;
}

/**
 * CPU time used by every user process that is not the benchmark or one of
 * its descendants (someone's test suite, a build): a sign that the figures were
 * disturbed. Sampled once a second; a process's reaped children count through
 * its cutime/cstime, so short-lived ones are caught too.
 */
export class ForeignCpu {
  private last = new Map<number, number>();
  private totalTicks = 0;
  private timer: NodeJS.Timeout | null = null;

  start(): void {
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** CPU seconds used by other processes so far. */
  seconds(): number {
    this.sample(false);
    return this.totalTicks / CLK_TCK;
  }

  private sample(first: boolean): void {
    const procs = new Map<number, { ppid: number; ticks: number }>();
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        procs.set(Number(entry), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
      } catch {
        // exited meanwhile
      }
    }
    const mine = (pid: number): boolean => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
        if (p === process.pid) return true;
        p = procs.get(p)?.ppid ?? 0;
      }
      return false;
    };
    const next = new Map<number, number>();
    for (const [pid, { ticks }] of procs) {
      // Kernel threads (ksoftirqd and the like) mostly carry the benchmark's own loopback traffic.
      if (pid === 2 || procs.get(pid)!.ppid === 2 || mine(pid)) continue;
      const before = this.last.get(pid);
      if (!first) this.totalTicks += Math.max(0, ticks - (before ?? 0));
      next.set(pid, ticks);
    }
    this.last = next;
  }
}

export const foreign = new ForeignCpu();

/** utime + stime of these processes (all their threads), in microseconds. */
export function cpuMicros(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
    } catch {
      // exited
    }
  }
  return (ticks * 1e6) / CLK_TCK;
}

/** Sum of VmRSS over these processes, in bytes. */
export function rssBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited
    }
  }
  return total;
}

export function hardNofile(): number {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const text = (r.stdout ?? '').trim();
  return text === 'unlimited' ? 1 << 20 : Number(text) || 4096;
}

export function loadAverage(): string {
  try {
    return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return os.loadavg().map((n) => n.toFixed(2)).join(' ');
  }
}

export const loadAtStart = loadAverage();

/**
 * The process's established TCP connections to 127.0.0.1, counted by the
 * remote port (its fds' socket inodes looked up in /proc/net/tcp): which
 * backend sockets a proxy is connected to.
 */
export function connectionsByRemotePort(pids: number[]): Map<number, number> {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  }
  const counts = new Map<number, number>();
  let table = '';
  try {
    table = fs.readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return counts;
  }
  // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '01' || !inodes.has(f[9])) continue; // 01: ESTABLISHED
    const [address, port] = f[2].split(':');
    if (address !== '0100007F') continue; // 127.0.0.1, little-endian hex
    const n = parseInt(port, 16);
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  return counts;
}
